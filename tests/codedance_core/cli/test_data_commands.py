"""`codedance data synth` and `codedance data validate`, as a user runs them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from codedance_core.cli.data import app

runner = CliRunner()


def test_synth_then_validate(tmp_path):
    out = tmp_path / "suite.parquet"
    synth = runner.invoke(app, ["synth", "--out", str(out), "--n", "12", "--seed", "1", "--families", "count,chart",
                                "--split", "test", "--difficulty", "easy", "--json"])
    assert synth.exit_code == 0, synth.output
    written = json.loads(synth.output)
    assert written["rows"] == 12 and written["spec"]["split"] == "test"

    checked = runner.invoke(app, ["validate", str(out), "--quarantine", str(tmp_path / "q.parquet"), "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert (report["total_rows"], report["good_rows"], report["bad_rows"]) == (12, 12, 0)
    human = runner.invoke(app, ["validate", str(out), "--quarantine", str(tmp_path / "q.parquet")])
    assert "12 good, 0 quarantined" in human.output


def test_a_file_that_is_not_parquet_gets_one_line_and_status_2(tmp_path):
    path = tmp_path / "notes.parquet"
    path.write_text("just some text\n")
    result = runner.invoke(app, ["validate", str(path), "--quarantine", str(tmp_path / "q.parquet")])
    assert result.exit_code == 2
    assert "not a parquet file" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_bad_options_are_reported_without_a_traceback(tmp_path):
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "x.parquet"), "--families", "count,poetry"])
    assert result.exit_code == 2 and "families" in result.output
    assert runner.invoke(app, ["validate", "--help"]).exit_code == 0
    assert runner.invoke(app, ["synth", "--help"]).exit_code == 0
