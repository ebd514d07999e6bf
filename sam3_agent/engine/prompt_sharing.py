"""Prompt-free work of a k-prompt SAM 3 pass, computed once instead of k times (outputs unchanged).

Used by ``Sam3Engine`` on its own model instance; nothing in transformers' classes is modified.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import Sam3Model


class PromptFreeSharing:
    """Runs prompt-free parts of a k-prompt pass once instead of k times; outputs are unchanged.

    Two parts of SAM 3's prompt phase do not read the prompt:

    * the first DETR-encoder self-attention reads only the image features and their position encoding
      (the prompt enters later, in that layer's cross-attention). When all k rows hold one image (its
      features expanded to batch k), hooks on this model instance (not on the class) hand the module row 0
      only and expand its output back to k rows. At 1008x1008 it attends over 72x72 = 5184 tokens.
    * the DETR decoder's box relative-position bias (``Sam3DetrDecoder._get_rpb_matrix``, a
      (k, heads, queries, 5184) tensor) depends only on each row's reference boxes, which in the first
      decoder layer are the learned ones, equal for every row. This instance's method is wrapped: when all
      rows of the reference boxes are equal (checked), row 0 is computed and expanded.

    Both functions work row by row, so the row computed is exactly the one a single-prompt pass computes.
    Outside ``engine_pass`` (e.g. a direct ``model(...)`` call) the model runs as it is.
    """

    def __init__(self, model: Sam3Model) -> None:
        self._batch = 0  # k while an engine pass of k > 1 prompts runs, else 0
        self._one_image = False
        self._sliced = False
        if model.detr_encoder.layers:
            attention = model.detr_encoder.layers[0].self_attn
            attention.register_forward_pre_hook(self._first_row, with_kwargs=True)
            attention.register_forward_hook(self._expand, with_kwargs=True)
        decoder = model.detr_decoder
        if callable(getattr(decoder, "_get_rpb_matrix", None)):
            self._rpb_matrix = decoder._get_rpb_matrix  # the bound original
            decoder._get_rpb_matrix = self._shared_rpb_matrix  # this instance only

    @contextmanager
    def engine_pass(self, batch: int, *, one_image: bool) -> Iterator[None]:
        """Within: a pass of ``batch`` prompts; ``one_image``: all rows hold one image's features."""
        self._batch, self._one_image = (batch, one_image) if batch > 1 else (0, False)
        try:
            yield
        finally:
            self._batch, self._one_image, self._sliced = 0, False, False

    def _first_row(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        inputs = [kwargs.get(name) for name in ("query", "key", "value")]
        if not self._one_image or args or not all(isinstance(t, torch.Tensor) for t in inputs):
            return None  # not a one-image pass, or called in a way this does not know: run as is
        if any(t.shape[0] != self._batch for t in inputs):
            return None
        self._sliced = True
        return args, {**kwargs, "query": inputs[0][:1], "key": inputs[1][:1], "value": inputs[2][:1]}

    def _expand(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: tuple) -> tuple | None:
        if not self._sliced:
            return None
        self._sliced = False
        return tuple(t.expand(self._batch, *t.shape[1:]) if isinstance(t, torch.Tensor) else t for t in output)

    def _shared_rpb_matrix(self, reference_boxes: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        k = reference_boxes.shape[0]
        if (
            self._batch > 1
            and k == self._batch
            and torch.equal(reference_boxes[1:], reference_boxes[:1].expand(k - 1, -1, -1))
        ):
            first = self._rpb_matrix(reference_boxes[:1], *args, **kwargs)
            return first.expand(k, *first.shape[1:])
        return self._rpb_matrix(reference_boxes, *args, **kwargs)
