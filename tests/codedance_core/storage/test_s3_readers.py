"""Every reader of a stored artifact sees its current version, on S3 as on a local disk.

On S3 an artifact's plain key holds nothing: its data lives under a version key named by the
manifest. Each test below writes an artifact twice under one name (an overwrite) and reads it back
through the readers the stages use, which must all find the second content.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa

from codedance_core.config.data import SuiteSpec
from codedance_core.config.filtering import FilterConfig
from codedance_core.data.io import iter_batches, read_rows, scan_rows, write_rows
from codedance_core.data.suite import make_row
from codedance_core.data.validate import validate_file
from codedance_core.filtering.pipeline import SHARD_SCHEMA, assemble, input_digest, shard_name
from codedance_core.stages.evaluation import _local_copy
from codedance_core.storage import ArtifactStore, filesystem, resolve_uri
from codedance_core.train.model_shape import read_config_json
from codedance_core.train.sft_data import Encoder, load_examples
from tests.codedance_core.train.rows import trajectory_row


def rl_rows(count: int, seed: int) -> pa.Table:
    spec = SuiteSpec(families=["count"], n=count, seed=seed)
    return pa.Table.from_pylist([make_row(spec, index) for index in range(count)])


def test_row_readers_see_the_rewritten_rows(store: ArtifactStore, tmp_path: Path) -> None:
    uri = store.uri("data/rows.parquet")
    write_rows(pl.DataFrame({"x": [1, 2, 3]}), uri)
    second = write_rows(pl.DataFrame({"x": [10, 20]}), uri)

    assert read_rows(uri)["x"].to_list() == [10, 20]
    assert scan_rows(uri).collect()["x"].to_list() == [10, 20]
    assert [row["x"] for batch in iter_batches(uri) for row in batch.to_pylist()] == [10, 20]
    # The evaluation stage's copy of a benchmark on a worker.
    copy = _local_copy(store, second, tmp_path)
    assert pl.read_parquet(copy)["x"].to_list() == [10, 20]


def test_the_validator_reads_the_rewritten_rows(store: ArtifactStore) -> None:
    uri = store.uri("data/rl.parquet")
    write_rows(rl_rows(1, seed=0), uri)
    write_rows(rl_rows(3, seed=1), uri)

    report = validate_file(uri, "rl", quarantine_out=store.uri("quarantine/rl.parquet"))
    assert (report.total_rows, report.good_rows) == (3, 3)


def test_the_sft_loader_reads_the_rewritten_trajectories(store: ArtifactStore, tiny_bundle) -> None:
    uri = store.uri("data/sft.parquet")
    write_rows(pa.Table.from_pylist([trajectory_row(0)]), uri)
    write_rows(pa.Table.from_pylist([trajectory_row(i) for i in range(1, 3)]), uri)

    examples, stats = load_examples(Encoder.from_bundle(tiny_bundle), uri, max_length=4096)
    assert (stats.rows, len(examples)) == (2, 2)


def test_filtering_reads_the_rewritten_input(store: ArtifactStore) -> None:
    uri = store.uri("data/candidates.parquet")
    write_rows(rl_rows(1, seed=0), uri)
    second = write_rows(rl_rows(2, seed=1), uri)
    work = ArtifactStore(store.uri("filter-work/key"))
    scores = {
        "row_index": [0, 1],
        "pass_rate": [0.0, 0.5],
        "n_correct": [0, 1],
        "n_graded": [2, 2],
        "weak_answers": ["[]", "[]"],
        "reason": [None, None],
    }
    work.write_parquet(shard_name(0), pl.DataFrame(scores, schema=SHARD_SCHEMA))

    assert input_digest(uri) == second.digest
    kept, quarantine, _ = assemble(
        uri, work, FilterConfig(), store.uri("data/kept.parquet"), store.uri("data/kept.quarantine.parquet")
    )
    assert (kept.rows, quarantine) == (2, None)
    assert read_rows(kept.uri)["pass_rate"].to_list() == [0.0, 0.5]


def test_a_rewritten_model_folder_reads_back_whole_and_new(store: ArtifactStore, tmp_path: Path) -> None:
    def model(name: str, hidden_size: int) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"hidden_size": hidden_size}))
        (folder / "model.safetensors").write_bytes(bytes(hidden_size))
        return folder

    first = store.write_directory("models/policy", model("first", 8))
    second = store.write_directory("models/policy", model("second", 16))

    local = store.local_directory(second, cache_dir=tmp_path / "cache")
    assert json.loads((local / "config.json").read_text()) == {"hidden_size": 16}
    assert (local / "model.safetensors").stat().st_size == 16
    # A reference to the first write still reads the first folder (it is kept until deleted).
    older = store.local_directory(first, cache_dir=tmp_path / "cache")
    assert json.loads((older / "config.json").read_text()) == {"hidden_size": 8}
    # The memory planner reads the shape from the stored folder by its name.
    assert read_config_json(second.uri) == {"hidden_size": 16}


def test_a_file_the_store_did_not_write_is_read_where_it_is(store: ArtifactStore, tmp_path: Path) -> None:
    """A user's own parquet (no manifest) resolves to itself and reads as it is."""
    local = tmp_path / "mine.parquet"
    pl.DataFrame({"x": [1, 2]}).write_parquet(local)
    uri = store.uri("inputs/mine.parquet")
    fs, path = filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.put_file(str(local), path)

    assert resolve_uri(uri) == uri
    assert read_rows(uri)["x"].to_list() == [1, 2]
    assert scan_rows(uri).collect()["x"].to_list() == [1, 2]
