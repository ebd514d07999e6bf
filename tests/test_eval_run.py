"""Runs end to end: predictors on the synthetic set (exact answers, known metrics), the resumable JSONL writer,
the report, the `eval` command (in-process, over loopback HTTP for the agent), and a run killed mid-way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from sam3_agent.agent.messages import Message, ToolMessage
from sam3_agent.cli import app
from sam3_agent.evaluation.batch import SerialExecutor
from sam3_agent.evaluation.metrics import score_sample
from sam3_agent.evaluation.predictors import AgentPredictor, BaselinePredictor
from sam3_agent.evaluation.records import EvalRecord, Prediction, Sample
from sam3_agent.evaluation.report import group_summaries, summary_table, write_plots, write_summary
from sam3_agent.evaluation.runner import RECORDS, RecordsFile, RunError, run_eval
from sam3_agent.evaluation.synthetic import SceneSetSegmenter, read_synthetic, synthetic_answers, write_synthetic
from sam3_agent.images import load_image
from sam3_agent.schema import Prompt, Thresholds
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scripted import ScriptedChatModel
from sam3_agent.testing.turns import tool_call_turn

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, n_images=8)
    return root


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SAM3_AGENT_LLM_MODEL", "SAM3_AGENT_LLM_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SAM3_AGENT_EVAL_DELAY", raising=False)


def _groups(records: list[EvalRecord]) -> dict[str, object]:
    return dict(group_summaries(records))


def test_baseline_on_synthetic_gives_the_designed_numbers(synthetic: Path, tmp_path: Path) -> None:
    samples = read_synthetic(synthetic)
    predictor = BaselinePredictor(SceneSetSegmenter.load(synthetic), mode="all")
    result = run_eval(samples, SerialExecutor(predictor), tmp_path / "run", progress=False)
    assert result.computed == len(samples) == len(result.records)
    g = _groups(result.records)
    # short ReasonSeg queries are the bare phrase SAM 3 reads; long sentences it cannot (the agent's job)
    assert g["reasonseg val short"].giou == 1.0 and g["reasonseg val long"].giou == 0.0
    assert g["reasonseg val"].giou == 0.5
    # each ref has the bare phrase (read) and "the <phrase>" (not read)
    assert g["refcoco val"].giou == 0.5 and g["refcoco val"].ciou == 0.5
    assert g["countbench test"].accuracy == 1.0 and g["countbench test"].mae == 0.0
    assert g["coco-count val"].accuracy == 1.0 and g["overall"].errors == 0
    lines = (tmp_path / "run" / RECORDS).read_text().splitlines()
    assert sorted(json.loads(line)["sample_id"] for line in lines) == sorted(s.id for s in samples)


def _scripted_agent_llm(answers: dict[str, str], models: list[ScriptedChatModel]):
    """Per sample: segment the manifest's phrase, then answer with every mask found (and their number)."""

    def final(messages: list[Message]):
        result = next(m for m in reversed(messages) if isinstance(m, ToolMessage))
        ids = [int(i) for i in re.findall(r"#(\d+) ", result.content)]
        return tool_call_turn("final_answer", {"ids": ids, "text": f"{len(ids)} found", "count": len(ids)})

    def for_sample(sample: Sample) -> ScriptedChatModel:
        model = ScriptedChatModel([tool_call_turn("segment_phrases", {"phrases": [answers[sample.id]]}), final])
        models.append(model)
        return model

    return for_sample


def test_agent_with_scripted_llm_answers_everything(synthetic: Path, tmp_path: Path) -> None:
    samples = read_synthetic(synthetic)
    models: list[ScriptedChatModel] = []
    predictor = AgentPredictor(
        SceneSetSegmenter.load(synthetic), _scripted_agent_llm(synthetic_answers(synthetic), models)
    )
    result = run_eval(samples, SerialExecutor(predictor), tmp_path / "run", progress=False)
    assert len(models) == len(samples)
    for model in models:
        model.assert_complete()
    overall = _groups(result.records)["overall"]
    assert overall.errors == 0 and overall.giou == 1.0 and overall.ciou == 1.0 and overall.accuracy == 1.0
    record = result.records[0]
    assert [step.tool for step in record.prediction.trace] == ["segment_phrases", "final_answer"]
    assert record.prediction.status == "answered" and record.timings.total_s >= record.timings.predict_s > 0


class _FixedCount:
    def predict(self, sample: Sample, image: Image.Image) -> Prediction:
        return Prediction(count=1)


def _count_samples(folder: Path, n: int) -> list[Sample]:
    return [
        Sample(id=f"s{i}", dataset="d", split="val", task="count", image=str(folder / f"{i}.png"), query="how many?",
               gt_count=1)
        for i in range(n)
    ]  # fmt: skip


def test_failed_sample_is_recorded_then_retried(tmp_path: Path) -> None:
    samples = _count_samples(tmp_path, 3)
    for i in (0, 2):
        Image.new("RGB", (4, 4)).save(samples[i].image)
    first = run_eval(samples, SerialExecutor(_FixedCount()), tmp_path / "run", progress=False)
    failed = first.records[1]
    assert failed.error is not None and failed.error.startswith("ImageError") and failed.prediction is None
    assert failed.metrics.correct is False and failed.metrics.abs_error == 1  # scored as an answer of 0
    assert _groups(first.records)["overall"].errors == 1
    Image.new("RGB", (4, 4)).save(samples[1].image)
    plain = run_eval(samples, SerialExecutor(_FixedCount()), tmp_path / "run", progress=False)
    assert plain.computed == 0 and plain.records[1].error is not None  # a resume keeps the failure...
    again = run_eval(samples, SerialExecutor(_FixedCount()), tmp_path / "run", progress=False, retry_errors=True)
    assert again.computed == 1 and again.records[1].error is None  # ...unless asked to retry it
    lines = (tmp_path / "run" / RECORDS).read_text().splitlines()
    assert sorted(json.loads(line)["sample_id"] for line in lines) == ["s0", "s1", "s2"]


def test_resume_cuts_a_partial_line_and_counts_nothing_twice(tmp_path: Path) -> None:
    samples = _count_samples(tmp_path, 6)
    for sample in samples:
        Image.new("RGB", (4, 4)).save(sample.image)
    run_eval(samples[:4], SerialExecutor(_FixedCount()), tmp_path / "run", progress=False)
    path = tmp_path / "run" / RECORDS
    with path.open("ab") as fh:  # a crash in the middle of writing the fifth record
        fh.write(b'{"sample_id":"s4","dataset":"d","spl')
    result = run_eval(samples, SerialExecutor(_FixedCount()), tmp_path / "run", progress=False)
    assert result.computed == 2
    ids = [json.loads(line)["sample_id"] for line in path.read_text().splitlines()]
    assert ids == ["s0", "s1", "s2", "s3", "s4", "s5"]
    path.write_text(path.read_text().replace('"sample_id":"s2"', '"sample_id":'))
    with pytest.raises(RunError, match=r"line 3 .* is not a record"):
        run_eval(samples, SerialExecutor(_FixedCount()), tmp_path / "run", progress=False)


def test_resume_refuses_other_settings_and_fresh_starts_over(tmp_path: Path) -> None:
    samples = _count_samples(tmp_path, 2)
    for sample in samples:
        Image.new("RGB", (4, 4)).save(sample.image)
    run_eval(samples, SerialExecutor(_FixedCount()), tmp_path / "run", settings={"t": 1}, progress=False)
    with pytest.raises(RunError, match="differing: t"):
        run_eval(samples, SerialExecutor(_FixedCount()), tmp_path / "run", settings={"t": 2}, progress=False)
    fresh = run_eval(samples, SerialExecutor(_FixedCount()), tmp_path / "run", settings={"t": 2}, resume=False,
                     progress=False)  # fmt: skip
    assert fresh.computed == 2
    assert len((tmp_path / "run" / RECORDS).read_text().splitlines()) == 2  # started over, nothing lost or doubled


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with RecordsFile(tmp_path / RECORDS), pytest.raises(RunError, match="another run"):
        RecordsFile(tmp_path / RECORDS).__enter__()


def test_report_table_summary_and_plots(synthetic: Path, tmp_path: Path) -> None:
    samples = read_synthetic(synthetic)
    result = run_eval(samples, SerialExecutor(BaselinePredictor(SceneSetSegmenter.load(synthetic))), tmp_path / "r",
                      progress=False)  # fmt: skip
    rows = group_summaries(result.records)
    assert [name for name, _ in rows] == [
        "coco-count val", "countbench test", "reasonseg val", "reasonseg val long", "reasonseg val short",
        "refcoco val", "overall",
    ]  # fmt: skip
    console = Console(record=True, width=120)
    console.print(summary_table(rows))
    text = console.export_text()
    assert "overall" in text and "100.0" in text and "gIoU %" in text
    summary = json.loads(write_summary(rows, tmp_path / "summary.json").read_text())
    assert summary["groups"]["countbench test"]["accuracy"] == 1.0 and summary["groups"]["overall"]["n"] == len(samples)
    plots = write_plots(result.records, tmp_path / "plots")
    assert [p.name for p in plots] == ["iou_hist.png", "count_error.png"]
    assert all(Image.open(p).size == (600, 400) for p in plots)


def test_baseline_on_tiny_sam3_engine(engine, synthetic: Path, tmp_path: Path) -> None:
    samples = [s for s in read_synthetic(synthetic) if s.dataset in ("reasonseg", "countbench")][::3]
    predictor = BaselinePredictor(engine, thresholds=Thresholds(score=0.0), mode="all")
    result = run_eval(samples, SerialExecutor(predictor), tmp_path / "run", progress=False)
    assert result.computed == len(samples) and _groups(result.records)["overall"].errors == 0
    for sample, record in zip(samples, result.records, strict=True):
        image = load_image(sample.image)
        if sample.task == "segment":
            assert record.prediction.mask.size == (image.height, image.width)
            assert 0.0 <= record.metrics.iou <= 1.0
        else:
            assert record.prediction.count == len(record.prediction.instances)
        assert score_sample(sample, record.prediction) == record.metrics  # the stored metrics match the stored mask


# --- the command ------------------------------------------------------------------------------------------------


def test_eval_command_on_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["eval", "synthetic", str(tmp_path / "syn"), "--predictor", "baseline", "--engine", "scenes"]
    result = runner.invoke(app, [*args, "--baseline-mode", "all", "--out", str(out)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "56 sample(s), 56 computed now" in result.output and "overall" in result.output
    assert re.search(r"eval .* 56/56 .* ETA", result.output), "no progress bar with ETA"
    groups = json.loads((out / "summary.json").read_text())["groups"]
    assert groups["refcoco val"]["giou"] == 0.5 and groups["countbench test"]["accuracy"] == 1.0
    assert (out / "plots" / "iou_hist.png").is_file() and (out / "plots" / "count_error.png").is_file()
    again = runner.invoke(app, [*args, "--baseline-mode", "all", "--out", str(out), "--no-progress"])
    assert "56 sample(s), 0 computed now" in again.output
    other = runner.invoke(app, [*args, "--baseline-mode", "top1", "--out", str(out), "--no-progress"])
    message = " ".join(other.output.split())
    assert other.exit_code == 2 and "predictor.baseline_mode" in message and "--fresh" in message
    fresh = runner.invoke(app, [*args, "--baseline-mode", "top1", "--out", str(out), "--no-progress", "--fresh"])
    assert fresh.exit_code == 0 and "56 sample(s), 56 computed now" in fresh.output
    assert len((out / RECORDS).read_text().splitlines()) == 56


def test_eval_command_agent_over_http(synthetic: Path, tmp_path: Path) -> None:
    answers = synthetic_answers(synthetic)
    samples = read_synthetic(synthetic)[:2]
    segmenter = SceneSetSegmenter.load(synthetic)
    turns = []
    for sample in samples:
        (found,) = segmenter.segment(load_image(sample.image), [Prompt(text=answers[sample.id])])
        turns += [
            tool_call_turn("segment_phrases", {"phrases": [answers[sample.id]]}),
            tool_call_turn("final_answer", {"ids": list(range(1, len(found) + 1)), "text": "these"}),
        ]
    out = tmp_path / "run"
    with ReplayServer(turns) as server:
        result = runner.invoke(
            app,
            ["eval", "synthetic", str(synthetic), "--engine", "scenes", "--limit", "2", "--out", str(out)]
            + ["--llm-base-url", server.base_url, "--llm-model", "replay-model", "--llm-api-key", "sk-secret-123"]
            + ["--no-progress", "--no-plots"],
        )
        server.assert_complete()
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / RECORDS).read_text().splitlines()]
    assert [r["metrics"]["iou"] for r in records] == [1.0, 1.0]
    assert records[1]["prediction"]["trace"][0]["tool"] == "segment_phrases"
    run_info = (out / "run.json").read_text()
    assert "replay-model" in run_info and "sk-secret-123" not in run_info
    assert not (out / "plots").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reasonseg", "{tmp}/none", "--predictor", "baseline", "--engine", "scenes"], "synthetic set only"),
        (["reasonseg", "{tmp}/none", "--predictor", "baseline"], "does not exist"),
        (["folder", "{tmp}", "--predictor", "baseline"], "needs a query"),
    ],
)
def test_eval_command_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["eval", *(a.format(tmp=tmp_path) for a in args), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


@pytest.mark.usefixtures("no_llm_env")
def test_eval_agent_without_an_llm_plans_with_the_built_in_planner(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["eval", "synthetic", str(tmp_path / "s"), "--engine", "scenes", "--synthetic-images", "2", "--out"]
    result = runner.invoke(app, [*args, str(out), "--no-progress", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "built-in planner" in result.output
    records = [json.loads(line) for line in (out / RECORDS).read_text().splitlines()]
    assert records and all(r["prediction"]["trace"] or r["prediction"]["status"] == "gave_up" for r in records)
    assert any(r["prediction"]["status"] == "answered" for r in records)


def _summary_without_time(run: Path) -> dict:
    groups = json.loads((run / "summary.json").read_text())["groups"]
    return {name: {k: v for k, v in metrics.items() if k != "mean_seconds"} for name, metrics in groups.items()}


def test_killed_run_resumes_with_nothing_lost_or_counted_twice(synthetic: Path, tmp_path: Path) -> None:
    common = [str(synthetic), "--predictor", "baseline", "--engine", "scenes", "--no-progress", "--no-plots"]
    reference = tmp_path / "reference"
    result = runner.invoke(app, ["eval", "synthetic", *common, "--out", str(reference)])
    assert result.exit_code == 0, result.output

    run = tmp_path / "killed"
    env = {**os.environ, "SAM3_AGENT_EVAL_DELAY": "0.1"}
    exe = Path(sys.executable).parent / "sam3-agent"
    proc = subprocess.Popen([exe, "eval", "synthetic", *common, "--out", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            path = run / RECORDS
            if path.exists() and path.read_bytes().count(b"\n") >= 10:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    done_before = (run / RECORDS).read_bytes().count(b"\n")
    assert 10 <= done_before < 56
    with (run / RECORDS).open("ab") as fh:  # as if the kill had landed in the middle of a write
        fh.write(b'{"sample_id":"refcoco/val/10')

    resumed = subprocess.run(
        [sys.executable, str(REPO / "tools" / "evaluate.py"), "synthetic", *common, "--out", str(run)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"56 sample(s), {56 - done_before} computed now" in resumed.stdout
    ids = [json.loads(line)["sample_id"] for line in (run / RECORDS).read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 56
    assert _summary_without_time(run) == _summary_without_time(reference)
