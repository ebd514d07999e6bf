"""Segmentation engines. Import the transformers engine from its module; this package stays torch-free."""

from sam3_agent.engine.protocol import Segmenter

__all__ = ["Segmenter"]
