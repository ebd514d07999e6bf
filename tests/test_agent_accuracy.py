"""The end-to-end answer suite: the generator (seeded, varied, every kind), the ground truth on hand-built
scenes, the scorer, the `eval answers` command and `tools/agent_accuracy.py`, and the suite itself run with
the built-in planner, which must answer every kind at 100% (one test per kind, so a drop names the kind)."""

from __future__ import annotations

import json
import runpy
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sam3_agent.cli import app
from sam3_agent.evaluation.answers import (
    DEFAULT_CASES,
    KINDS,
    AnswerCase,
    SuiteReport,
    failure_lines,
    generate_cases,
    map_instances,
    run_suite,
    score_answer,
)
from sam3_agent.evaluation.answers.scoring import UNMATCHED
from sam3_agent.evaluation.answers.truth import (
    Ambiguous,
    Facts,
    clear_between,
    clear_by_gap,
    clear_ordered,
    clear_related,
    holds,
    ordered,
)
from sam3_agent.schema import Answer, Instance, Prompt
from sam3_agent.testing.replay_server import ReplayServer
from sam3_agent.testing.scene import Scene, SceneObject
from sam3_agent.testing.turns import tool_call_turn

REPO = Path(__file__).resolve().parents[1]
LLM_ENV = ("SAM3_AGENT_LLM_MODEL", "SAM3_AGENT_LLM_BASE_URL", "SAM3_AGENT_LLM_API_KEY", "SAM3_AGENT_LLM_TOOL_MODE",
           "OPENAI_BASE_URL")  # fmt: skip
runner = CliRunner()


@pytest.fixture(scope="module")
def cases() -> list[AnswerCase]:
    return generate_cases()


@pytest.fixture(scope="module")
def planner_report(cases: list[AnswerCase]) -> SuiteReport:
    return run_suite(cases, seed=0)


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)


def _key(case: AnswerCase) -> tuple:
    objects = tuple((o.phrase, o.box, o.shape, o.score) for o in case.scene.objects)
    return (case.id, case.query, case.expected, case.count, case.status, tuple(case.duplicates.items()), objects)


# --- the generator --------------------------------------------------------------------------------------------


def test_generator_is_deterministic_per_seed() -> None:
    first, again, other = generate_cases(72, seed=5), generate_cases(72, seed=5), generate_cases(72, seed=6)
    assert [_key(c) for c in first] == [_key(c) for c in again]
    assert sum(a.query != b.query for a, b in zip(first, other, strict=True)) > 60


def test_a_case_is_the_same_whatever_n_and_kinds() -> None:
    full = {c.id: _key(c) for c in generate_cases(96, seed=3)}
    some = generate_cases(96, seed=3, kinds=["between", "count"])
    wanted = sum(KINDS[i % len(KINDS)] in ("between", "count") for i in range(96))
    assert {c.kind for c in some} == {"between", "count"} and len(some) == wanted >= 6
    assert all(full[c.id] == _key(c) for c in some)
    assert [_key(c) for c in generate_cases(24, seed=3)] == list(full.values())[:24]


def test_eval_default_case_count_is_the_suites() -> None:
    from sam3_agent.evaluation.command import ANSWER_CASES

    assert ANSWER_CASES == DEFAULT_CASES


def test_generator_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown query kind"):
        generate_cases(24, kinds=["sideways"])
    with pytest.raises(ValueError, match=">= 1"):
        generate_cases(0)


def test_default_suite_is_large_varied_and_covers_every_kind(cases: list[AnswerCase]) -> None:
    assert len(cases) == DEFAULT_CASES >= 300
    per_kind = Counter(c.kind for c in cases)
    assert set(per_kind) == set(KINDS) and min(per_kind.values()) >= 12
    queries = [c.query for c in cases]
    assert len(set(queries)) >= 0.95 * len(queries)
    text = " ".join(queries).lower()
    for words in ("please", "could you", "can you", "for me", "in the image", "?", "second", "2nd", "3rd", "third",
                  "people", "knives", "glasses", "how many", "count the", "number of", "between", "not", "containing",
                  "on top of", "beneath", "within", "beside", "closest to", "furthest from", "most ", "biggest",
                  "except", "other than", "but", "not covered by", "part of", "without"):  # fmt: skip
        assert words in text, words
    assert any("last" in c.query for c in generate_cases(40 * len(KINDS), kinds=["ordinal"]))  # rare per kind
    assert sum(bool(c.duplicates) for c in cases) >= 40
    assert Counter(c.status for c in cases) >= Counter({"answered": 250, "no_match": 40, "gave_up": 15})


def test_every_case_is_consistent(cases: list[AnswerCase]) -> None:
    for case in cases:
        n = len(case.scene.objects) + len(case.masks)
        assert all(0 <= i < n for i in case.expected), case.id
        if case.status != "answered":
            assert not case.expected, case.id
        if case.count is not None:
            assert case.count == len(case.expected), case.id
        if case.kind in ("nearest", "farthest", "extreme", "ordinal"):
            assert len(case.expected) == 1, case.id


def test_some_orderings_have_deliberate_size_ties(cases: list[AnswerCase]) -> None:
    tied = 0
    for case in cases:
        if case.kind in ("extreme", "ordinal"):
            (pick,) = case.expected
            facts = Facts(case.scene)
            same = [i for i in facts.group(case.scene.objects[pick].phrase) if i != pick]
            tied += any(facts.shape(i).area == facts.shape(pick).area for i in same)
    assert tied >= 2


# --- the ground truth on hand-built scenes --------------------------------------------------------------------


def _facts(*objects: tuple[str, tuple[int, int, int, int], str] | SceneObject, size=(200, 120)) -> Facts:
    built = [o if isinstance(o, SceneObject) else SceneObject(o[0], o[1], o[2]) for o in objects]
    return Facts(Scene(size[0], size[1], built))


def test_directions_need_the_centroid_and_three_quarters_of_the_pixels() -> None:
    f = _facts(("laptop", (90, 40, 110, 60), "box"), ("cup", (20, 40, 40, 60), "box"),
               ("cup", (160, 40, 180, 60), "box"), ("cup", (92, 0, 116, 20), "box"))  # fmt: skip
    assert holds(f, 1, "left_of", 0) and not holds(f, 2, "left_of", 0) and holds(f, 2, "right_of", 0)
    assert not holds(f, 3, "left_of", 0) and holds(f, 3, "above", 0) and holds(f, 0, "below", 3)
    assert not holds(f, 0, "left_of", 0)  # never its own anchor
    assert clear_related(f, [1, 2], "left_of", [0]) == {1}
    with pytest.raises(Ambiguous):  # 1/3 of it is left of the laptop's centre: not clear-cut
        clear_related(f, [1, 2, 3], "left_of", [0])


def test_on_needs_contact_and_under_needs_the_span() -> None:
    f = _facts(("table", (40, 60, 160, 80), "box"), ("cup", (80, 41, 100, 61), "ellipse"),
               ("cup", (120, 10, 140, 30), "ellipse"), ("cup", (80, 95, 100, 115), "ellipse"),
               ("cup", (170, 95, 190, 115), "ellipse"))  # fmt: skip
    assert clear_related(f, [1, 2, 3, 4], "on", [0]) == {1}
    assert clear_related(f, [1, 2, 3, 4], "under", [0]) == {3}
    assert clear_related(f, [1, 2, 3, 4], "below", [0]) == {3, 4}


def test_inside_contains_and_next_to() -> None:
    f = _facts(("box", (20, 20, 100, 100), "box"), ("ball", (40, 40, 56, 56), "ellipse"),
               ("ball", (92, 40, 108, 56), "box"), ("ball", (150, 40, 166, 56), "box"),
               ("ball", (131, 40, 147, 56), "box"))  # fmt: skip
    assert clear_related(f, [1, 2, 3], "inside", [0]) == {1}
    assert clear_related(f, [0], "contains", [1, 2, 3]) == {0}
    assert f.gap(3, 4) == pytest.approx(3.0) and f.gap(2, 0) == 0.0
    assert clear_related(f, [1, 3], "next_to", [0]) == {1}
    assert holds(f, 3, "next_to", 4) and not holds(f, 4, "next_to", 0)


def test_between_is_inside_the_hull_of_both_boxes_and_outside_each() -> None:
    f = _facts(("plate", (10, 50, 40, 80), "box"), ("bowl", (160, 50, 190, 80), "box"),
               ("cup", (90, 55, 110, 75), "box"), ("cup", (90, 0, 110, 20), "box"),
               ("cup", (15, 55, 35, 75), "box"))  # fmt: skip
    assert clear_between(f, [2, 3], [0], [1]) == {2}
    assert clear_between(f, [2, 3], [0, 1], [0, 1]) == {2}  # the same phrase twice: two different objects
    assert clear_between(f, [4], [0], [1]) == set()  # inside one of the boxes


def test_nearest_and_farthest_by_mask_gap_and_only_when_clear() -> None:
    f = _facts(("plate", (90, 50, 110, 70), "box"), ("cup", (60, 50, 80, 70), "box"),
               ("cup", (10, 50, 30, 70), "box"), ("cup", (150, 50, 170, 70), "box"),
               ("cup", (170, 50, 190, 70), "box"))  # fmt: skip
    assert clear_by_gap(f, [1, 2, 3], [0], farthest=False) == 1
    assert clear_by_gap(f, [1, 2, 3], [0], farthest=True) == 2
    with pytest.raises(Ambiguous):  # both 60 px from the plate
        clear_by_gap(f, [2, 4], [0], farthest=True)


def test_orderings_break_ties_by_score_then_scene_order() -> None:
    f = _facts(
        SceneObject("cup", (10, 10, 30, 30), "box", score=0.8), SceneObject("cup", (50, 10, 70, 30), "box"),
        SceneObject("cup", (90, 10, 130, 50), "box"), SceneObject("cup", (150, 10, 170, 30), "box", score=0.8),
    )  # fmt: skip
    assert ordered(f, [0, 1, 2, 3], "largest") == [2, 1, 0, 3]
    assert ordered(f, [0, 1, 2, 3], "smallest") == [1, 0, 3, 2]
    assert ordered(f, [0, 1, 2, 3], "rightmost") == [3, 2, 1, 0]
    assert clear_ordered(f, [1, 2, 3], "largest", ties=True) == [2, 1, 3]
    with pytest.raises(Ambiguous):
        clear_ordered(f, [0, 2, 3], "largest", ties=True)  # equal areas and equal scores


# --- the scorer ---------------------------------------------------------------------------------------------------


def _cups_case(**changes) -> AnswerCase:
    scene = Scene(200, 120, [SceneObject("cup", (10, 10, 40, 40)), SceneObject("cup", (60, 10, 90, 40), score=0.8),
                             SceneObject("plate", (120, 10, 180, 60))])  # fmt: skip
    fields = {"id": "count-0001", "kind": "count", "query": "how many cups?", "scene": scene,
              "expected": frozenset({0, 1}), "count": 2, "status": "answered", "duplicates": {"cup": 1}}  # fmt: skip
    return AnswerCase(**{**fields, **changes})


def _answer(case: AnswerCase, instances: list[Instance], *, status="answered", count=None) -> Answer:
    return Answer(query=case.query, status=status, text="an answer", count=count, instances=tuple(instances))


def test_scorer_maps_instances_to_objects_by_mask() -> None:
    case = _cups_case()
    (found,) = case.segmenter().segment(case.scene.image(), [Prompt(text="cup")])
    assert len(found) == 4 and map_instances(case.scene, found) == [0, UNMATCHED, 1, UNMATCHED]
    store_like = [inst.model_copy(update={"id": 7 + n}) for n, inst in enumerate(found)]  # ids play no part
    right = score_answer(case, _answer(case, [store_like[2], store_like[0]], count=2))
    assert right.passed and right.got_ids == [1, 0] and not right.problems


@pytest.mark.parametrize(
    ("pick", "status", "count", "problems"),
    [
        ([0], "answered", 2, ["ids"]),  # one cup missing
        ([0, 1, 3], "answered", 2, ["ids"]),  # a near-duplicate mask selected
        ([0, 0, 2], "answered", 2, ["ids"]),  # the same object twice
        ([0, 2], "answered", 3, ["count"]),
        ([0, 2], "answered", None, ["count"]),
        ([0, 2], "no_match", 2, ["status"]),
    ],
)
def test_scorer_fails_a_wrong_answer(pick: list[int], status: str, count: int | None, problems: list[str]) -> None:
    case = _cups_case()
    (found,) = case.segmenter().segment(case.scene.image(), [Prompt(text="cup")])
    result = score_answer(case, _answer(case, [found[i] for i in pick], status=status, count=count))
    assert not result.passed and result.problems == problems
    assert result.scene is not None and result.scene["objects"][2]["phrase"] == "plate"
    assert any("wrong" in line for line in failure_lines(_report([result])))


def _report(results) -> SuiteReport:
    from sam3_agent.evaluation.answers.suite import kind_rows

    return SuiteReport(chat_model="test", seconds=0.0, rows=kind_rows(results), results=results)


def test_scorer_ignores_the_count_where_none_is_asked_and_wants_no_masks_on_no_match() -> None:
    case = _cups_case(kind="absent", query="find the giraffes", expected=frozenset(), count=None, status="no_match")
    assert score_answer(case, _answer(case, [], status="no_match", count=0)).passed
    (found,) = case.segmenter().segment(case.scene.image(), [Prompt(text="cup")])
    assert score_answer(case, _answer(case, found[:1], status="no_match")).problems == ["ids"]


# --- the command and the script -------------------------------------------------------------------------------


def test_eval_answers_with_the_planner(tmp_path: Path, no_llm_env: None) -> None:
    result = runner.invoke(app, ["eval", "answers", str(tmp_path), "--cases", "48", "--no-progress"],
                           env={"COLUMNS": "160"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "built-in planner" in result.output and "total" in result.output
    report = json.loads((tmp_path / "answers.json").read_text())
    assert len(report["results"]) == 48 and report["chat_model"] == "built-in planner"
    assert {row["kind"] for row in report["rows"]} == set(KINDS)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--case-kind", "sideways"], "unknown query kind"), (["--predictor", "baseline"], "does not apply")],
)
def test_eval_answers_bad_input_exits_2(tmp_path: Path, no_llm_env: None, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["eval", "answers", str(tmp_path), *args, "--no-progress"])
    assert result.exit_code == 2 and message in " ".join(result.output.split())


def test_eval_other_kinds_still_need_data() -> None:
    result = runner.invoke(app, ["eval", "reasonseg", "--no-progress"])
    assert result.exit_code == 2 and "needs DATA" in result.output


def test_eval_answers_through_an_llm_endpoint(tmp_path: Path, no_llm_env: None) -> None:
    (case,) = generate_cases(24, kinds=["segment"])
    phrase = case.scene.objects[min(case.expected)].phrase
    (found,) = case.segmenter().segment(case.scene.image(), [Prompt(text=phrase)])
    ids = [n + 1 for n, obj in enumerate(map_instances(case.scene, found)) if obj != UNMATCHED]  # store ids: 1..n
    turns = [tool_call_turn("segment_phrases", {"phrases": [phrase]}),
             tool_call_turn("final_answer", {"ids": ids, "text": "here they are"})]  # fmt: skip
    with ReplayServer(turns) as server:
        result = runner.invoke(
            app,
            ["eval", "answers", str(tmp_path), "--cases", "24", "--case-kind", "segment", "--no-progress",
             "--llm-base-url", server.base_url, "--llm-model", "replay-model"],
            env={"COLUMNS": "160"},
        )  # fmt: skip
        server.assert_complete()
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "answers.json").read_text())
    assert report["chat_model"] == f"replay-model at {server.base_url}"
    assert report["rows"] == [{"kind": "segment", "cases": 1, "passed": 1}]


def test_agent_accuracy_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(REPO / "tools" / "agent_accuracy.py"), run_name="not_main")["main"]
    out = tmp_path / "report.json"
    code = main(["--cases", "48", "--kind", "ordinal", "--kind", "unparseable", "--json", str(out)])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert [row["kind"] for row in report["rows"]] == ["ordinal", "unparseable"] and "total" in printed
    assert code == (0 if all(row["cases"] == row["passed"] for row in report["rows"]) else 1)


def test_threads_give_the_same_results(cases: list[AnswerCase], planner_report: SuiteReport) -> None:
    threaded = run_suite(cases[:48], workers=3)
    assert [(r.id, r.passed, r.got_ids) for r in threaded.results] == [
        (r.id, r.passed, r.got_ids) for r in planner_report.results[:48]
    ]


# --- the suite, answered by the built-in planner ----------------------------------------------------------------


def test_planner_suite_runs_quickly(planner_report: SuiteReport) -> None:
    assert planner_report.total.cases == DEFAULT_CASES
    assert planner_report.seconds < 60


@pytest.mark.parametrize("kind", KINDS)
def test_planner_answers_every_kind(planner_report: SuiteReport, kind: str) -> None:
    row = planner_report.row(kind)
    failed = [r for r in planner_report.failures if r.kind == kind]
    details = "\n".join(failure_lines(planner_report.model_copy(update={"results": failed}), limit=5))
    assert row.passed == row.cases, f"{kind}: {row.passed}/{row.cases} passed\n{details}"
