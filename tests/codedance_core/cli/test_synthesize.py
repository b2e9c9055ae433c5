"""`codedance data synthesize` on a small suite file."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from codedance_core.cli.synthesize import app
from codedance_core.config.data import SuiteSpec
from codedance_core.data.suite import write_suite


def test_synthesize_prints_statistics_as_json(tmp_path):
    write_suite(SuiteSpec(families=["count", "direct"], n=4, seed=2), str(tmp_path / "rl.parquet"))
    result = CliRunner().invoke(app, ["--input", str(tmp_path / "rl.parquet"), "--out", str(tmp_path / "sft.parquet"),
                                      "--rejects", str(tmp_path / "rejects.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output.strip().splitlines()[-1])
    assert stats["kept"] + stats["rejected"] == 4 and stats["rows"] == stats["kept"]
    assert set(stats["families"]) == {"count", "direct"}


def test_a_missing_input_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["--input", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code == 2 and "no such file" in result.output
