"""The Gradio page: ``build_demo`` wires ``DemoHandlers`` into a ``gr.Blocks``; ``launch_demo`` serves it.

Per-session state is a ``gr.State`` holding a ``DemoSession`` (a fresh one per browser tab or
``gradio_client`` session, its files deleted when Gradio drops the session); the segmenter is shared.
Endpoints for ``gradio_client``, all on the API page with their types: ``/segment_image``
(``sam3_agent.demo.api``: image, phrases, thresholds; SAM 3 alone), ``/chat`` (message as a MultimodalTextbox
value ``{"text", "files"}``, then mode, score threshold, mask threshold, LLM endpoint, model, API key, each
defaulting to the page's setting; it streams) and ``/refine`` (box text, "positive" / "negative", phrase, then
the same settings). A refused input or a failure raises ``gr.Error`` (a toast on the page, ``AppError`` in
``gradio_client``) after the chat shows it. ``launch_demo(..., mcp_server=...)`` also serves our MCP server
(``sam3_agent.demo.mcp_mount``).

A click on the overlay does what the "A click on the image" radio says: a corner of an exemplar box (the
default), or a point on / off ONE object, which SAM 3's tracker segments again after every click ("Clear
clicks" starts over; ``sam3_agent.demo.clicking``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from sam3_agent.agent.chat_models import make_chat_model
from sam3_agent.demo import formatting as fmt
from sam3_agent.demo.api import segment_api
from sam3_agent.demo.config import DemoConfig, Mode
from sam3_agent.demo.handlers import ChatModelFactory, DemoHandlers
from sam3_agent.demo.session import DemoSession
from sam3_agent.demo.video_tab import TrackerSource, VideoRuns, build_video_tab
from sam3_agent.engine.protocol import Clicker, Segmenter

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

MODES = [("Agent (LLM or built-in planner + SAM 3)", "agent"), ("Segment only (no LLM)", "segment")]
PLANNER_HINT = "empty: the built-in planner (no LLM; common query shapes only)"
POLARITIES = [("Positive: find more like this", "positive"), ("Negative: reject look-alikes", "negative")]
MESSAGE_PLACEHOLDERS: dict[Mode, str] = {
    "agent": "Ask about the image, e.g. 'how many cups are left of the laptop?'",
    "segment": "Noun phrases to segment, separated by commas, e.g. 'cup, laptop'",
}
CHAT_PLACEHOLDERS: dict[Mode, str] = {
    "agent": "Attach an image with the paperclip (or paste one), then ask a question.",
    "segment": "Attach an image with the paperclip (or paste one), then type the noun phrases to segment.",
}
CHAT_HEIGHT = "calc(100vh - 420px)"
"""The chat fills the window above the message box, which stays in view (e.g. at 1400x1000)."""
CLICK_MODES = [
    ("Box corner (refine a phrase)", "box"),
    ("Point on the object", "positive"),
    ("Point off the object", "negative"),
]

CSS = """
#sam3-header h1 { margin-bottom: 0.2em; }
#sam3-answer { font-size: 1.05em; }
#sam3-hint { color: var(--body-text-color-subdued); font-size: 0.9em; }
#sam3-chat img { max-height: 150px; width: auto; }
"""


def _header(config: DemoConfig) -> str:
    if config.llm_model:
        llm = f"Answered by: `{config.answered_by}`."
    else:
        llm = (
            "Answered by: the **built-in planner** (no LLM configured; it understands common query shapes such as "
            "*segment the cups* or *the second cup from the left*; set an LLM endpoint and model under Settings "
            "for free-form questions)."
        )
    return (
        f"# {config.title}\n"
        "Attach or paste an image, then ask about it: *segment the cup left of the laptop*, "
        "*how many cups are left of the laptop?* A language model (or the built-in planner) plans, SAM 3 "
        "segments; follow-up questions on the same image reuse its features. In segment-only mode, type noun "
        f"phrases separated by commas. {llm}"
    )


class _View:
    """Turns a session into the page's outputs, skipping the heavy ones (image, table, files) when unchanged."""

    def __init__(self) -> None:
        self._last_image: Any = None
        self._last_result: Any = None

    def __call__(self, s: DemoSession) -> tuple[Any, ...]:
        image_key = (id(s.result), id(s.image), s.box, s.corner, tuple(s.exemplars), tuple(s.clicks))
        image = gr.skip() if image_key == self._last_image else s.display_image()
        self._last_image = image_key
        if s.result is not None and id(s.result) == self._last_result:
            answer, table, files = gr.skip(), gr.skip(), gr.skip()
        else:
            answer, table, files = _result_values(s)
        self._last_result = id(s.result) if s.result is not None else None
        return list(s.chat), image, answer, table, files, s.phrase, s.hint, s


def _table(rows: list[list[Any]]) -> dict[str, Any]:
    return {"headers": fmt.TABLE_HEADERS, "data": rows}


def _box_value(s: DemoSession) -> str:
    return ", ".join(f"{v:g}" for v in s.box) if s.box is not None else ""


def _delete_session(session: Any) -> None:
    if isinstance(session, DemoSession):
        session.delete_files()


def build_demo(
    segmenter: Segmenter,
    config: DemoConfig | None = None,
    *,
    chat_model_factory: ChatModelFactory = make_chat_model,
    clicker: Clicker | None = None,
    video_tracker: TrackerSource | None = None,
) -> gr.Blocks:
    """The demo page for ``segmenter`` (shared by every session). Launch it with ``launch_demo``.

    ``clicker``: SAM 3's tracker for point clicks and the agent's ``segment_at`` (e.g. ``clicker_for(engine)``);
    None: point clicks say that they need it. ``video_tracker``: SAM 3's video model (or a function loading it on
    the first clip) for a second tab, "Video" (``sam3_agent.demo.video_tab``); None: images only."""
    handlers = DemoHandlers(segmenter, config, chat_model_factory=chat_model_factory, clicker=clicker)
    config = handlers.config
    callbacks = _Callbacks(handlers)
    with gr.Blocks(title=config.title, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(_header(config), elem_id="sam3-header")
        if video_tracker is None:
            page = _page(config)
        else:
            with gr.Tabs():
                with gr.Tab("Image", id="image"):
                    page = _page(config)
                with gr.Tab("Video", id="video"):
                    build_video_tab(VideoRuns(video_tracker, score=config.score_threshold), config.concurrency)
        _wire_chat(page, callbacks, config.concurrency)
        _wire_refine(page, callbacks, config.concurrency)
        _wire_new_chat(page, callbacks)
        _wire_mode(page)
        gr.api(
            segment_api(handlers),
            api_name="segment_image",
            concurrency_limit=config.concurrency,
            concurrency_id="sam3",
        )
    demo.queue(default_concurrency_limit=config.concurrency)
    return demo


# --- the page's parts, top to bottom --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ChatColumn:
    """The left column: mode, the new-chat button, the chat, the message box (and the hidden copy /chat reads)."""

    mode: gr.Radio
    new_chat: gr.Button
    chatbot: gr.Chatbot
    message: gr.MultimodalTextbox
    buffer: gr.MultimodalTextbox


@dataclass(frozen=True)
class _Results:
    """The right column's top: overlay, what a click does, hint, answer, instance table, downloads."""

    overlay: gr.Image
    click_mode: gr.Radio
    clear_clicks: gr.Button
    hint: gr.Markdown
    answer: gr.Markdown
    table: gr.Dataframe
    files: gr.File


@dataclass(frozen=True)
class _RefinePanel:
    """The accordion that re-runs a phrase with exemplar boxes."""

    panel: gr.Accordion
    phrase: gr.Textbox
    box: gr.Textbox
    polarity: gr.Radio
    refine: gr.Button
    clear: gr.Button


@dataclass(frozen=True)
class _SettingsPanel:
    """The settings accordion: thresholds and the language model of this session."""

    score: gr.Slider
    mask: gr.Slider
    base_url: gr.Textbox
    llm_model: gr.Textbox
    api_key: gr.Textbox


@dataclass(frozen=True)
class _Page:
    """Every component the events read or write."""

    state: gr.State
    chat: _ChatColumn
    results: _Results
    refine: _RefinePanel
    settings: _SettingsPanel

    @property
    def settings_inputs(self) -> list[Any]:
        """The settings /chat and /refine take after their own inputs (in this order)."""
        s = self.settings
        return [self.chat.mode, s.score, s.mask, s.base_url, s.llm_model, s.api_key]

    @property
    def outputs(self) -> list[Any]:
        """What ``_View`` fills, in its order."""
        r = self.results
        return [self.chat.chatbot, r.overlay, r.answer, r.table, r.files, self.refine.phrase, r.hint, self.state]


def _page(config: DemoConfig) -> _Page:
    state = gr.State(DemoSession(), delete_callback=_delete_session)
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            chat = _chat_column(config)
        with gr.Column(scale=4):
            results = _results()
            refine = _refine_panel()
            settings = _settings_panel(config)
    return _Page(state, chat, results, refine, settings)


def _chat_column(config: DemoConfig) -> _ChatColumn:
    with gr.Row(equal_height=False):
        mode = gr.Radio(
            MODES, value=config.default_mode, show_label=False, container=False, scale=4, elem_id="sam3-mode"
        )
        new_chat = gr.Button("New chat", size="sm", scale=1, min_width=90)
    chatbot = gr.Chatbot(
        label="Chat",
        show_label=False,
        height=CHAT_HEIGHT,
        min_height=300,
        elem_id="sam3-chat",
        buttons=["copy_all"],
        feedback_options=None,
        placeholder=CHAT_PLACEHOLDERS[config.default_mode],
    )
    message = gr.MultimodalTextbox(
        show_label=False,
        placeholder=MESSAGE_PLACEHOLDERS[config.default_mode],
        sources=["upload"],
        file_count="multiple",
        elem_id="sam3-message",
    )
    buffer = gr.MultimodalTextbox(visible=False)
    return _ChatColumn(mode, new_chat, chatbot, message, buffer)


def _results() -> _Results:
    overlay = gr.Image(
        label="Overlay",
        type="pil",
        format="png",
        interactive=False,
        height=380,
        buttons=["download", "fullscreen"],
        elem_id="sam3-overlay",
    )
    with gr.Row(equal_height=False):
        click_mode = gr.Radio(
            CLICK_MODES, value="box", label="A click on the image", scale=4, elem_id="sam3-click-mode"
        )
        clear_clicks = gr.Button("Clear clicks", size="sm", scale=1, min_width=90, elem_id="sam3-clear-clicks")
    hint = gr.Markdown(label="Hint", elem_id="sam3-hint")
    answer = gr.Markdown(label="Answer", elem_id="sam3-answer")
    table = gr.Dataframe(
        value=_table([]),
        headers=fmt.TABLE_HEADERS,
        datatype=["number", "str", "number", "number", "str"],
        interactive=False,
        label="Instances",
        max_height=260,
        elem_id="sam3-table",
    )
    files = gr.File(
        label="Downloads",
        file_count="multiple",
        interactive=False,
        height=190,
        elem_id="sam3-files",
    )
    return _Results(overlay, click_mode, clear_clicks, hint, answer, table, files)


def _refine_panel() -> _RefinePanel:
    with gr.Accordion("Refine with an exemplar box", open=False, elem_id="sam3-refine-panel") as panel:
        with gr.Row():
            phrase = gr.Textbox(value="", label="Phrase", scale=3)
            box = gr.Textbox(label="Box", placeholder="x0, y0, x1, y1 (image pixels)", scale=3, elem_id="sam3-box")
        polarity = gr.Radio(POLARITIES, value="positive", show_label=False)
        with gr.Row():
            refine = gr.Button("Refine", variant="primary", elem_id="sam3-refine")
            clear = gr.Button("Clear exemplars")
    return _RefinePanel(panel, phrase, box, polarity, refine, clear)


def _settings_panel(config: DemoConfig) -> _SettingsPanel:
    with gr.Accordion("Settings", open=False, elem_id="sam3-settings"):
        score = gr.Slider(0, 1, value=config.score_threshold, step=0.01, label="Score threshold")
        mask = gr.Slider(0, 1, value=config.mask_threshold, step=0.01, label="Mask threshold")
        base_url = gr.Textbox(
            value=config.llm_base_url or "", label="LLM endpoint", placeholder="http://localhost:8000/v1"
        )
        llm_model = gr.Textbox(
            value=config.llm_model or "", label="LLM model", placeholder=PLANNER_HINT, elem_id="sam3-model"
        )
        api_key = gr.Textbox(
            value="",
            type="password",
            label="LLM API key",
            placeholder="empty: the server's key (for the server's endpoint) or none",
        )
    return _SettingsPanel(score, mask, base_url, llm_model, api_key)


# --- the events -----------------------------------------------------------------------------------------------------


def _endpoint(api_name: str, concurrency: int) -> dict[str, Any]:
    """An event on the API page (``gradio_client`` may call it), sharing the segmenter's concurrency limit;
    the page's own events are ``api_visibility="private"``."""
    return {
        "api_name": api_name,
        "api_visibility": "public",
        "show_progress": "minimal",
        "concurrency_limit": concurrency,
        "concurrency_id": "sam3",
    }


def _wire_chat(page: _Page, callbacks: _Callbacks, concurrency: int) -> None:
    """Enter: the message moves to the hidden buffer (the box is locked), /chat streams, the box unlocks."""
    message, buffer = page.chat.message, page.chat.buffer
    sent = message.submit(
        lambda m: (gr.MultimodalTextbox(value=None, interactive=False), m),
        [message],
        [message, buffer],
        queue=False,
        api_visibility="private",
    )
    sent.then(
        callbacks.chat, [buffer, *page.settings_inputs, page.state], page.outputs, **_endpoint("chat", concurrency)
    ).then(lambda: gr.MultimodalTextbox(interactive=True), None, [message], api_visibility="private")


def _wire_refine(page: _Page, callbacks: _Callbacks, concurrency: int) -> None:
    """/refine, clicks on the overlay (box corners, or points on one object) and clearing exemplars / clicks."""
    refine, overlay, hint, state = page.refine, page.results.overlay, page.results.hint, page.state
    r, s = page.results, page.settings
    refine.refine.click(
        callbacks.refine_box,
        [refine.box, refine.polarity, refine.phrase, *page.settings_inputs, state],
        [*page.outputs, refine.box],
        **_endpoint("refine", concurrency),
    )
    overlay.select(
        callbacks.select,
        [r.click_mode, s.score, s.mask, state],
        [page.chat.chatbot, overlay, refine.box, hint, refine.panel, r.answer, r.table, r.files, state],
        show_progress="minimal",
        api_visibility="private",
    )
    r.clear_clicks.click(
        callbacks.clear_clicks, [state], [overlay, hint, r.answer, r.table, r.files, state], api_visibility="private"
    )
    refine.clear.click(callbacks.clear_exemplars, [state], [overlay, refine.box, hint, state], api_visibility="private")


def _wire_mode(page: _Page) -> None:
    """The mode decides the placeholders, and whether the language model's settings are shown."""
    s = page.settings

    def follow(mode: Mode) -> tuple[Any, ...]:
        llm = gr.Textbox(visible=mode == "agent")
        return (
            gr.MultimodalTextbox(placeholder=MESSAGE_PLACEHOLDERS[mode]),
            gr.Chatbot(placeholder=CHAT_PLACEHOLDERS[mode]),
            llm,
            llm,
            llm,
        )

    page.chat.mode.change(
        follow,
        [page.chat.mode],
        [page.chat.message, page.chat.chatbot, s.base_url, s.llm_model, s.api_key],
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )


def _wire_new_chat(page: _Page, callbacks: _Callbacks) -> None:
    page.chat.new_chat.click(
        callbacks.start_over, [page.state], [*page.outputs, page.refine.box], api_visibility="private"
    )


class _Callbacks:
    """The page's event functions: page values in, ``DemoHandlers`` called, page outputs back."""

    def __init__(self, handlers: DemoHandlers) -> None:
        self.handlers = handlers

    # /chat and /refine take their own inputs, then the page's settings (``_Page.settings_inputs``) and the
    # session; the parameter names are the endpoints' parameter names for ``gradio_client``. After the last
    # update (which shows a failure in the chat), a failure is raised: a toast, and AppError in gradio_client.
    def chat(
        self, message: dict[str, Any] | None,
        mode: str, score_threshold: float, mask_threshold: float, llm_base_url: str, llm_model: str,
        llm_api_key: str, session: DemoSession,
    ) -> Iterator[tuple[Any, ...]]:  # fmt: skip
        view = _View()
        values = _settings(mode, score_threshold, mask_threshold, llm_base_url, llm_model, llm_api_key)
        for s in self.handlers.chat(session, message, values):
            yield view(s)
        _raise_failure(session)

    def refine_box(
        self, box: str, polarity: str, phrase: str,
        mode: str, score_threshold: float, mask_threshold: float, llm_base_url: str, llm_model: str,
        llm_api_key: str, session: DemoSession,
    ) -> Iterator[tuple[Any, ...]]:  # fmt: skip
        view = _View()
        values = _settings(mode, score_threshold, mask_threshold, llm_base_url, llm_model, llm_api_key)
        for s in self.handlers.refine(session, box or "", polarity != "negative", phrase or "", values):
            yield (*view(s), _box_value(s))
        _raise_failure(session)

    def pick(self, session: DemoSession, evt: gr.SelectData) -> tuple[Any, ...]:
        x, y = evt.index
        s = self.handlers.pick(session, x, y)
        opened = gr.Accordion(open=True) if s.box is not None else gr.skip()
        return s.display_image(), _box_value(s), s.hint, opened, s

    def select(
        self, click_mode: str, score_value: float, mask_value: float, session: DemoSession, evt: gr.SelectData
    ) -> tuple[Any, ...]:
        """A click on the overlay: a box corner (``pick``), or a point on / off one object (the tracker)."""
        if click_mode not in ("positive", "negative"):
            overlay, box, hint, opened, s = self.pick(session, evt)
            return gr.skip(), overlay, box, hint, opened, gr.skip(), gr.skip(), gr.skip(), s
        x, y = evt.index
        values = _settings("segment", score_value, mask_value, "", "", "")
        s = self.handlers.click(session, x, y, click_mode == "positive", values)
        return list(s.chat), s.display_image(), gr.skip(), s.hint, gr.skip(), *_result_values(s), s

    def clear_clicks(self, session: DemoSession) -> tuple[Any, ...]:
        s = self.handlers.clear_clicks(session)
        return s.display_image(), s.hint, *_result_values(s), s

    def clear_exemplars(self, session: DemoSession) -> tuple[Any, ...]:
        s = self.handlers.clear_exemplars(session)
        return s.display_image(), "", s.hint, s

    def start_over(self, session: DemoSession) -> tuple[Any, ...]:
        return (*_View()(self.handlers.reset(session)), "")


def _raise_failure(session: DemoSession) -> None:
    if session.error:
        raise gr.Error(session.error, print_exception=False)


def _result_values(s: DemoSession) -> tuple[Any, Any, Any]:
    """The answer, table and downloads panels for the session's latest result."""
    if s.result is None:
        return "", _table([]), None
    heading = {"answer": "Answer", "segmentation": "Segmentation", "click": "Clicked object"}[s.result.kind]
    files = [str(p) for p in s.result.files]
    return f"#### {heading}\n{s.result.markdown}", _table(fmt.table_rows(s.result.instances)), files


def _settings(mode: str, score: float, mask: float, url: str, model: str, key: str) -> dict[str, Any]:
    return {
        "mode": mode,
        "score_threshold": score,
        "mask_threshold": mask,
        "llm_base_url": url or "",
        "llm_model": model or "",
        "llm_api_key": key or "",
    }


def launch_demo(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    mcp_server: MCPServer | None = None,
    max_upload_bytes: int | None = None,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> str:
    """Serve ``demo`` on ``host:port`` (None: Gradio picks from 7860 up); return its local URL.

    ``share`` makes a public gradio.live link (off by default). ``mcp_server`` (``demo_mcp_server``) is also
    served, over streamable HTTP at ``<URL>mcp`` (``sam3_agent.demo.mcp_mount.MCP_PATH``), on the same port.
    Blocks until the server stops unless ``prevent_thread_lock``.
    """
    app_kwargs: dict[str, Any] = {}
    if mcp_server is not None:
        from sam3_agent.demo.mcp_mount import mcp_app_kwargs

        app_kwargs = mcp_app_kwargs(mcp_server, host)
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=max_upload_bytes,
        prevent_thread_lock=True,
        quiet=quiet,
        theme=gr.themes.Soft(),
        css=CSS,
        footer_links=["api"],
        mcp_server=False,  # Gradio's own needs mcp<2; ours is mounted through app_kwargs
        app_kwargs=app_kwargs,
    )
    if not prevent_thread_lock:
        demo.block_thread()
    return url
