"""The result file: appended as items finish, newest row wins, torn lines survive a crash."""

from __future__ import annotations

from codedance_core.evaluation.results import ResultFile, output_paths, safe_name, scored_keys


def test_output_names_carry_model_and_dataset(tmp_path) -> None:
    paths = output_paths(tmp_path, "org/Model-7B", "hr:bench 4k")
    assert paths["result"].name == "result_org_Model-7B_hr_bench_4k.jsonl"
    assert paths["stats"].name == "stats_org_Model-7B_hr_bench_4k.json"
    assert safe_name("///") == "x"


def test_newest_row_wins_and_only_scored_rows_count_as_done(tmp_path) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    results.append(
        [
            {"item_id": "a", "sample_index": 0, "status": "rollout_error"},
            {"item_id": "b", "sample_index": 0, "status": "scored"},
        ]
    )
    results.append([{"item_id": "a", "sample_index": 0, "status": "scored"}])
    rows = results.load()
    assert rows[("a", 0)]["status"] == "scored" and scored_keys(rows) == {("a", 0), ("b", 0)}


def test_a_torn_last_line_is_ignored_and_does_not_swallow_the_next_row(tmp_path) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    results.append([{"item_id": "a", "sample_index": 0, "status": "scored"}])
    with results.path.open("a") as handle:
        handle.write('{"item_id": "b", "samp')  # the process died mid-write
    results.append([{"item_id": "c", "sample_index": 0, "status": "scored"}])
    assert set(results.load()) == {("a", 0), ("c", 0)}


def test_rewrite_leaves_exactly_the_given_rows(tmp_path) -> None:
    results = ResultFile(tmp_path / "r.jsonl")
    results.append([{"item_id": "a", "sample_index": 0, "status": "judge_error"}] * 3)
    results.rewrite([{"item_id": "a", "sample_index": 0, "status": "scored"}])
    assert results.path.read_text().count("\n") == 1
