"""The suite as a dataset: deterministic by seed, disjoint across splits, valid RL rows."""

from __future__ import annotations

import hashlib
import json

import polars as pl

from codedance_core.config.data import SuiteSpec
from codedance_core.data.schemas import RLRow
from codedance_core.data.suite import make_row, write_suite
from codedance_core.data.validate import validate_file


def test_same_seed_gives_byte_identical_files_serial_or_parallel(tmp_path):
    spec = SuiteSpec(n=60, seed=7)
    serial = write_suite(spec, str(tmp_path / "a.parquet"), workers=1, shard_rows=16)
    parallel = write_suite(spec, str(tmp_path / "b.parquet"), workers=2, shard_rows=16)
    assert serial.digest == parallel.digest and serial.rows == 60
    other = write_suite(SuiteSpec(n=60, seed=8), str(tmp_path / "c.parquet"), shard_rows=16)
    assert other.digest != serial.digest


def test_train_and_test_splits_share_no_item(tmp_path):
    def fingerprints(split: str) -> tuple[set[str], set[str]]:
        rows = [make_row(SuiteSpec(n=100, seed=0, split=split), i) for i in range(100)]
        images = {hashlib.sha256(row["images"][0]["bytes"]).hexdigest() for row in rows}
        params = set()
        for row in rows:
            generator = json.loads(row["extra_info"]["generator"])
            generator.pop("split")
            params.add(json.dumps(generator, sort_keys=True))
        return images, params

    train_images, train_params = fingerprints("train")
    test_images, test_params = fingerprints("test")
    assert len(train_images) == 100 and len(test_images) == 100
    assert not train_images & test_images
    assert not train_params & test_params


def test_rows_are_valid_rl_rows_with_the_answer_twice(tmp_path):
    spec = SuiteSpec(n=20, seed=3, difficulty="hard")
    ref = write_suite(spec, str(tmp_path / "suite.parquet"))
    report = validate_file(ref.uri)
    assert report.good_rows == 20 and report.bad_rows == 0
    frame = pl.read_parquet(ref.uri)
    for raw in frame.to_dicts():
        row = RLRow.model_validate(raw)
        family = row.ability
        assert row.data_source == f"suite_{family}"
        assert row.extra_info.answer == row.answer
        assert row.prompt[1].content.startswith("<image>\n" + row.extra_info.question)
        generator = json.loads(raw["extra_info"]["generator"])
        assert generator["family"] == family and generator["difficulty"] == "hard"
    assert frame["ability"].to_list()[:5] == ["count", "search", "chart", "math", "direct"]


def test_difficulty_mix_follows_the_spec():
    def difficulties(**fields) -> list[str]:
        spec = SuiteSpec(n=60, families=["direct"], **fields)
        return [make_row(spec, i)["extra_info"]["difficulty"] for i in range(60)]

    assert set(difficulties(difficulty="easy")) == {"easy"}
    mixed = difficulties(difficulty="mixed", hard_fraction=0.5)
    assert 15 <= mixed.count("hard") <= 45
    assert set(difficulties(difficulty="mixed", hard_fraction=0.0)) == {"easy"}
