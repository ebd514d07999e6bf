"""The Gradio chat demo: ``sam3-agent demo`` (or ``python demos/gradio_app.py``).

Layout of this room:
- ``config``: ``DemoConfig`` (server-side defaults) and ``TurnSettings`` (what one page sends per request);
- ``session``: ``DemoSession``, the per-browser-tab state (image, result, exemplars, clicks, chat history);
- ``formatting``: chat messages, answer text and table rows (plain data, no Gradio);
- ``handlers``: ``DemoHandlers``, the page's actions as plain functions over a session (no Gradio);
- ``clicking``: point clicks on one object (SAM 3's tracker), the handlers' click actions (no Gradio);
- ``api``: the public ``/segment_image`` endpoint (SAM 3 alone) and its typed result;
- ``mcp_mount``: ``demo --mcp``, our MCP server on the demo's own web server at ``/mcp``;
- ``app``: ``build_demo`` wires the handlers into a ``gr.Blocks``; ``launch_demo`` serves it;
- ``command``: the ``demo`` typer command.

Only ``api``, ``app`` and ``command`` import gradio (``command`` inside its function body).
"""
