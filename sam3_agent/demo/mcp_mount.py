"""``sam3-agent demo --mcp``: our MCP server (``sam3_agent.integrations.mcp_server``) on the demo's own web server.

Gradio's MCP server needs ``mcp<2`` and our ``mcp`` extra installs ``mcp>=2``, so the demo mounts ours instead:
the same tools as ``sam3-agent mcp`` (``sam3_segment``, ``sam3_count``, ``sam3_ask``, and ``sam3_segment_at``
with a tracker), over streamable HTTP at ``<page URL>mcp``, sharing the page's SAM 3 engine. Images come as
``data:`` URLs or base64 (no server paths: the page may be open to a network). As with ``sam3-agent mcp
--transport http`` there is no authentication; on 127.0.0.1 / localhost DNS-rebinding protection is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sam3_agent.demo.config import DemoConfig, TurnSettings
from sam3_agent.engine.protocol import Clicker, Segmenter
from sam3_agent.errors import ConfigError
from sam3_agent.schema import Thresholds

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

MCP_PATH = "/mcp"
"""Where the MCP endpoint is, under the page's URL (as ``sam3-agent mcp --transport http`` serves it)."""


def demo_mcp_server(segmenter: Segmenter, config: DemoConfig, *, clicker: Clicker | None = None) -> MCPServer:
    """An MCP server over ``segmenter`` with the demo's defaults: thresholds, upload limits, and its LLM for
    ``sam3_ask`` (the built-in planner without ``--llm-model``).

    Raises:
        ConfigError: the ``mcp`` package is not installed.
    """
    try:
        from sam3_agent.integrations.image_refs import ImageResolver
        from sam3_agent.integrations.mcp_server import build_server
        from sam3_agent.integrations.service import Sam3Service
    except ImportError as exc:
        raise ConfigError(f"--mcp needs the MCP SDK: pip install 'sam3-agent[mcp]' ({exc})") from None
    from sam3_agent.agent.chat_models import make_chat_model

    settings = TurnSettings(llm_base_url=config.llm_base_url or "", llm_model=config.llm_model or "")
    llm_settings = settings.llm_settings(config)
    service = Sam3Service(
        segmenter,
        make_chat_model(llm_settings) if llm_settings is not None else None,
        images=ImageResolver(None, max_pixels=config.max_pixels, max_bytes=config.max_upload_bytes),
        thresholds=Thresholds(score=config.score_threshold, mask=config.mask_threshold),
        max_turns=config.max_turns,
        clicker=clicker,
    )
    return build_server(service, name=config.title)


def mcp_app_kwargs(server: MCPServer, host: str) -> dict[str, Any]:
    """FastAPI arguments (Gradio's ``app_kwargs``) that add ``server``'s streamable HTTP route at ``MCP_PATH``
    and run its session manager for as long as the web server runs."""
    mcp_app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    return {"routes": list(mcp_app.routes), "lifespan": lambda _app: server.session_manager.run()}
