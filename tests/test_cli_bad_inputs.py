"""The command line's answers to the bad inputs of issue 16 (entries 2, 3, 8, 10, 11, 12, 13): each a one-line
error, exit code 2 for bad input (1 for a failing endpoint), no traceback, and nothing slow done first."""

from __future__ import annotations

import errno
import http.server
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from sam3_agent.cli import app
from sam3_agent.schema import MAX_PHRASE_CHARS
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.turns import tool_call_turn

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("no_llm_env")

DESK = Scene(
    200,
    120,
    [
        SceneObject("cup", (10, 60, 40, 100)),
        SceneObject("cup", (50, 60, 80, 100)),
        SceneObject("laptop", (95, 30, 150, 90), shape="box", color=(90, 90, 110)),
        SceneObject("cup", (160, 60, 190, 100), color=(40, 40, 200)),
    ],
)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "desk.png"
    DESK.image().save(path)
    return path


@pytest.fixture
def no_sam3(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Loading SAM 3 fails the test: bad input must be refused before the slow load. Returns the calls."""
    calls: list[tuple] = []

    def never(*args: object) -> None:
        calls.append(args)
        raise AssertionError("SAM 3 was loaded for a run that could not succeed")

    monkeypatch.setattr("sam3_agent.cli._load_segmenter", never)
    return calls


@pytest.fixture
def scene_sam3(monkeypatch: pytest.MonkeyPatch) -> None:
    """SAM 3 stands in as a ``SceneSegmenter`` of ``DESK`` (true masks, no weights)."""
    monkeypatch.setattr("sam3_agent.cli._load_segmenter", lambda *args: SceneSegmenter(DESK))


def one_line_error(result: Result, code: int = 2) -> str:
    """The error line of a failed run, checked: the exit code, no traceback, no pydantic dump, one line."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), f"not a clean exit: {result.exception!r}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    text = result.output
    assert "Traceback" not in text and "validation error" not in text and "errors.pydantic.dev" not in text
    assert len(result.stderr.strip().splitlines()) <= 2, f"more than the error (and a notice): {result.stderr!r}"
    return errors[0]


# --- 2: the output folder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["segment", "cup"], ["ask", "how many cups?"]], ids=["segment", "ask"])
def test_an_output_folder_that_is_a_file_is_refused_before_loading(
    photo: Path, tmp_path: Path, no_sam3: list, command: list[str]
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    for out in (a_file, a_file / "inside"):
        result = runner.invoke(app, [command[0], str(photo), command[1], "--out", str(out)])
        assert f"{a_file} " in one_line_error(result) and "is a file, not a folder" in result.stderr
    assert not no_sam3


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no folder can be made")
def test_an_output_folder_that_cannot_be_made_is_refused_before_loading(photo: Path, no_sam3: list) -> None:
    result = runner.invoke(app, ["segment", str(photo), "cup", "--out", "/proc/nope/deeper"])
    assert "cannot write to the output folder /proc/nope/deeper" in one_line_error(result)
    assert not no_sam3


def test_when_writing_fails_at_the_end_the_answer_is_printed_first(
    photo: Path, tmp_path: Path, scene_sam3: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("sam3_agent.outputs.write_overlay", disk_full)
    result = runner.invoke(app, ["ask", str(photo), "how many cups are left of the laptop?", "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "count: 2" in result.stdout
    error = f"error: the answer was not saved: cannot write to {tmp_path / 'o'}: No space left on device"
    assert error in result.stderr
    assert result.output.index("count: 2") < result.output.index("error:")


def test_runs_never_replace_each_other_and_segment_and_ask_share_no_file(
    photo: Path, tmp_path: Path, scene_sam3: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert runner.invoke(app, ["segment", str(photo), "cup"]).exit_code == 0
    assert runner.invoke(app, ["ask", str(photo), "how many cups are there?"]).exit_code == 0
    first, second = tmp_path / "outputs" / "desk", tmp_path / "outputs" / "desk-2"
    assert sorted(p.name for p in second.iterdir()) == ["segmentation.json", "segmentation_overlay.png"]
    names = sorted(p.name for p in first.iterdir())
    assert names == ["answer.json", "answer_overlay.png", "masks", "segmentation.json", "segmentation_overlay.png"]
    assert len(list((first / "masks").iterdir())) == 3


def test_an_explicit_folder_with_an_earlier_result_needs_overwrite(
    photo: Path, tmp_path: Path, scene_sam3: None
) -> None:
    out = tmp_path / "run"
    ask = ["ask", str(photo), "how many cups are there?", "--out", str(out)]
    assert runner.invoke(app, ask).exit_code == 0
    assert len(list((out / "masks").iterdir())) == 3
    refused = runner.invoke(app, ask)
    assert "already holds answer.json from an earlier run: pass --overwrite" in one_line_error(refused)
    replaced = runner.invoke(
        app, ["ask", str(photo), "how many cups are left of the laptop?", "-o", str(out)] + ["--overwrite"]
    )
    assert replaced.exit_code == 0, replaced.output
    assert len(list((out / "masks").iterdir())) == 2, "the masks of the earlier answer are gone"


# --- 3: a hung LLM endpoint -------------------------------------------------------------------------------


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """A TCP listener that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_hung_endpoint_says_it_waits_and_gives_up_in_the_stated_time(
    photo: Path, hung_endpoint: str, no_sam3: list, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    args = ["ask", str(photo), "how many cups?", "--llm-base-url", hung_endpoint, "--llm-model", "m"]
    if how == "flag":
        args += ["--llm-timeout", "0.6"]
    else:
        monkeypatch.setenv("SAM3_AGENT_LLM_TIMEOUT", "0.6")
    import sam3_agent.agent.loop
    import sam3_agent.agent.openai_client  # noqa: F401 - imported first, so only the waiting is timed

    started = time.monotonic()
    result = runner.invoke(app, args)
    assert time.monotonic() - started < 10
    error = one_line_error(result, code=1)
    assert f"waiting for the LLM at {hung_endpoint}/ (timeout 0.6 s, 1 attempt; gives up within 0.6 s)" in (
        result.stderr
    )
    assert "did not answer within 0.6 s" in error and "--llm-timeout" in error and "SAM3_AGENT_LLM_TIMEOUT" in error
    assert not no_sam3, "SAM 3 was loaded before the endpoint was found dead"


def test_a_timeout_alone_configures_no_language_model(
    photo: Path, scene_sam3: None, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SAM3_AGENT_LLM_TIMEOUT", "5")
    result = runner.invoke(app, ["ask", str(photo), "how many cups?", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0 and "built-in planner" in result.stderr


# --- 8 and 11: prompts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["   "], "a phrase is empty"),
        ([], "nothing to segment: give one or more noun phrases"),
        (["cup", "--box", "nan,10,50,60"], "box 'nan,10,50,60' must be four finite numbers"),
        (["cup", "--box", "10,10,inf,60"], "must be four finite numbers"),
        (["word " * 40], f"a short noun phrase of at most {MAX_PHRASE_CHARS} characters"),
    ],
    ids=["empty-phrase", "nothing", "nan-box", "inf-box", "long-phrase"],
)
def test_bad_prompts_get_one_line(photo: Path, no_sam3: list, args: list[str], says: str) -> None:
    result = runner.invoke(app, ["segment", str(photo), *args])
    assert says in one_line_error(result)
    assert not no_sam3


# --- 10: checked before SAM 3 loads -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "says"),
    [("50,50,10,10", "empty or inverted"), ("20,20,20,60", "empty or inverted"), ("500,500,600,600", "outside")],
    ids=["inverted", "degenerate", "outside"],
)
def test_bad_boxes_are_refused_before_loading(photo: Path, no_sam3: list, box: str, says: str) -> None:
    result = runner.invoke(app, ["segment", str(photo), "cup", "--box", box])
    assert says in one_line_error(result)
    assert not no_sam3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def not_an_api() -> Iterator[str]:
    """A web server answering 404 to every GET and POST, like a base URL missing its /v1."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"detail": "Not Found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_an_unreachable_endpoint_fails_before_loading(photo: Path, no_sam3: list) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    result = runner.invoke(app, ["ask", str(photo), "how many cups?", "--llm-base-url", url, "--llm-model", "m"])
    assert "could not connect to the LLM endpoint" in one_line_error(result, code=1)
    assert not no_sam3


def test_a_wrong_base_url_fails_before_loading(photo: Path, not_an_api: str, no_sam3: list) -> None:
    result = runner.invoke(app, ["ask", str(photo), "how many cups?", "--llm-base-url", not_an_api, "--llm-model", "m"])
    error = one_line_error(result, code=1)
    assert "answered HTTP 404" in error and "it usually ends in /v1" in error
    assert not no_sam3


def test_a_model_the_endpoint_does_not_list_is_warned_about(photo: Path, scene_sam3: None, tmp_path: Path) -> None:
    turns = [tool_call_turn("final_answer", {"ids": [], "text": "None.", "count": 0})]
    with ReplayServer(turns, model="served-model") as server:
        result = runner.invoke(
            app,
            ["ask", str(photo), "how many cats?", "--llm-base-url", server.base_url, "--llm-model", "other"]
            + ["-o", str(tmp_path / "o")],
        )
    assert result.exit_code == 0, result.output
    assert "lists no model 'other' (it lists served-model); check --llm-model" in " ".join(result.stderr.split())


# --- 12: one progress display, quiet with --quiet ---------------------------------------------------------


def test_no_transformers_bar_on_stderr(tiny_checkpoint: Path, photo: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}  # bars on, as for users
    command = [str(Path(sys.executable).parent / "sam3-agent"), "segment", str(photo), "cup"]
    command += ["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "out")]
    plain = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert plain.returncode == 0, plain.stderr
    assert "Loading weights" not in plain.stderr and "it/s" not in plain.stderr, plain.stderr
    assert "wrote " in plain.stderr


def test_a_terminal_sees_one_progress_display(
    tiny_checkpoint: Path, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screens = []
    for n, extra in enumerate(([], ["--quiet"])):
        screen = io.StringIO()
        monkeypatch.setattr("sam3_agent.cli.console", Console(file=screen, force_terminal=True, width=100))
        args = ["segment", str(photo), "cup", "--checkpoint", str(tiny_checkpoint), "-o", str(tmp_path / str(n))]
        result = runner.invoke(app, args + extra)
        assert result.exit_code == 0 and "instance(s)" in result.stdout
        screens.append(screen.getvalue() + result.stderr)
    shown, quiet = screens
    assert "Loading SAM 3" in shown and "Segmenting" in shown and "wrote " in shown
    assert quiet == "", "--quiet prints only the results"


# --- 13: --help -------------------------------------------------------------------------------------------

TYPE_TAG = re.compile(r"<(str|int|bool|float|path|file|text|list\[[^\]]*\]|[a-z]+ range|choice)[^>]*>", re.IGNORECASE)


@pytest.mark.parametrize(
    "command", [[], ["ask"], ["segment"], ["mcp"], ["eval"], ["demo"], ["serve"], ["track"]], ids=str
)
def test_help_has_no_type_tags(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.output and "Show this message and exit." in result.output
    assert not TYPE_TAG.search(result.output), TYPE_TAG.findall(result.output)


def test_help_still_names_every_option() -> None:
    text = runner.invoke(app, ["ask", "--help"], env={"COLUMNS": "200"}).output
    for option in ("--llm-timeout", "--overwrite", "--quiet", "--out", "--tile", "--no-tile", "--max-turns"):
        assert option in text
    assert "[x>=1]" in text, "ranges are still shown"
