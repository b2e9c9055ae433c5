"""Filtering a whole RL parquet: score it shard by shard with checkpoints, then write the kept rows.

Two passes over the input, both streamed (a shard of `shard_rows` rows in memory at a time):

1. **Score.** Each shard's scores go to `shard-NNNNN.parquet` in a work dir whose name is a
   digest of (input file digest, weak model id, FilterConfig.scoring_digest(), which covers the
   effective loop settings). A shard file is
   committed atomically with a manifest, so a shard either exists whole or not at all: a run
   that was killed resumes at the first shard without a file, and a rerun over the same input
   with the same weak model generates nothing. The sandbox pool is only started when some shard
   still needs scoring.
2. **Assemble.** The input is read again beside its shard files: rows whose pass rate is below
   the trivial threshold go to the output with `pass_rate`, `bucket` and `weak_answers` added
   (every input column kept as it was); trivial rows are dropped and counted; quarantined rows
   go to the quarantine file with their `reason`. Bucket edges are applied here, not stored in
   the shards, so trying other edges costs no generation.

kept + trivial + quarantined == input rows, always.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from codedance_core.config.agent import RolloutSettings
from codedance_core.config.base import canonical_json
from codedance_core.config.filtering import BUCKET_QUARANTINED, BUCKET_TRIVIAL, FilterConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.data.io import ParquetSink, iter_batches, open_parquet
from codedance_core.filtering.report import FilterReport
from codedance_core.filtering.scoring import WeakModel, bucket_for, score_shard
from codedance_core.rewards.judge import LLMJudge
from codedance_core.sandbox import SandboxPool
from codedance_core.storage import ArtifactRef, ArtifactStore, filesystem, join_uri

DEFAULT_WORK_ROOT = "./.codedance/filter-work"
_DIGEST_CHUNK = 1 << 20

# Called after each shard: (shard index, rows in it, whether it was reused from the work dir).
ShardCallback = Callable[[int, int, bool], None]


@dataclass
class FilterResult:
    """Where everything went, and the distribution report."""

    output: ArtifactRef
    quarantine: ArtifactRef | None
    work_dir: str
    shards_scored: int
    shards_reused: int
    report: FilterReport
    report_files: list[str] = field(default_factory=list)


def input_digest(uri: str) -> str:
    """The input's content digest: from its store manifest when it has one, else by reading it."""
    store, name = ArtifactStore.for_file(uri)
    ref = store.ref(name)
    if ref is not None:
        return ref.digest
    fs, path = filesystem(uri)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(_DIGEST_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def work_key(
    input_uri: str, model_id: str, config: FilterConfig, rollout: RolloutSettings | None = None
) -> dict[str, str]:
    """What the work dir is keyed by, and the key itself (`key`); `rollout` as in `filter_dataset`."""
    parts = {"input": input_digest(input_uri), "weak_model": model_id, "config": config.scoring_digest(rollout)}
    parts["key"] = hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:24]
    return parts


def shard_name(shard_index: int) -> str:
    return f"shard-{shard_index:05d}.parquet"


def filter_dataset(
    input_uri: str,
    out_uri: str,
    weak: WeakModel,
    config: FilterConfig | None = None,
    *,
    work_root: str = DEFAULT_WORK_ROOT,
    quarantine_uri: str | None = None,
    report_dir: str | None = None,
    reward_config: RewardConfig | None = None,
    sandbox_config: SandboxConfig | None = None,
    judge: LLMJudge | None = None,
    on_shard: ShardCallback | None = None,
    rollout: RolloutSettings | None = None,
) -> FilterResult:
    """Score every row with the weak model (reusing scored shards), then write the kept rows.

    `rollout`: the loop settings the filter inherits (the profile's rollout section, or
    `profile.rollout_for("filter")`: the filter's overrides are applied either way); None: the
    library defaults."""
    config = config or FilterConfig()
    rollout = config.rollout_settings(rollout)
    key = work_key(input_uri, weak.model_id, config, rollout)
    work = ArtifactStore(join_uri(work_root, key["key"]))
    work.write_json(
        "key.json",
        {**key, "filter_config": config.model_dump(mode="json"), "rollout": rollout.model_dump(mode="json")},
    )
    scored, reused = asyncio.run(
        score_all_shards(input_uri, work, weak, config, reward_config, sandbox_config, judge, on_shard, rollout)
    )
    quarantine_uri = quarantine_uri or _beside(out_uri, ".quarantine.parquet")
    output, quarantine, report = assemble(input_uri, work, config, out_uri, quarantine_uri)
    report_files = report.write(report_dir) if report_dir else []
    return FilterResult(output, quarantine, work.root, scored, reused, report, report_files)


async def score_all_shards(
    input_uri: str,
    work: ArtifactStore,
    weak: WeakModel,
    config: FilterConfig,
    reward_config: RewardConfig | None,
    sandbox_config: SandboxConfig | None,
    judge: LLMJudge | None,
    on_shard: ShardCallback | None,
    rollout: RolloutSettings | None = None,
) -> tuple[int, int]:
    """Score the shards that have no file yet; (shards scored, shards reused)."""
    pool: SandboxPool | None = None
    scored = reused = first_row = 0
    try:
        for shard_index, batch in enumerate(iter_batches(input_uri, config.shard_rows)):
            was_reused = work.exists(shard_name(shard_index))
            if was_reused:
                reused += 1
            else:
                if pool is None:
                    pool = await SandboxPool(sandbox_config or SandboxConfig()).start()
                rows = batch.to_pylist()
                records = await score_shard(
                    rows, first_row, shard_index, weak, pool, config, reward_config, judge, rollout
                )
                work.write_parquet(shard_name(shard_index), pl.DataFrame(records, schema=SHARD_SCHEMA))
                scored += 1
            first_row += batch.num_rows
            if on_shard is not None:
                on_shard(shard_index, batch.num_rows, was_reused)
    finally:
        if pool is not None:
            await pool.close()
    return scored, reused


SHARD_SCHEMA = {
    "row_index": pl.Int64,
    "pass_rate": pl.Float64,
    "n_correct": pl.Int64,
    "n_graded": pl.Int64,
    "weak_answers": pl.String,
    "reason": pl.String,
}


def assemble(
    input_uri: str, work: ArtifactStore, config: FilterConfig, out_uri: str, quarantine_uri: str
) -> tuple[ArtifactRef, ArtifactRef | None, FilterReport]:
    """Join the input with its shard scores: kept rows to `out_uri`, bad rows to the quarantine."""
    with open_parquet(input_uri) as source:
        schema = source.schema
    out_schema = schema.append(pa.field("pass_rate", pa.float64())).append(pa.field("bucket", pa.string()))
    out_schema = out_schema.append(pa.field("weak_answers", pa.string()))
    bad_schema = schema.append(pa.field("reason", pa.string()))
    report = FilterReport(k=config.k)
    bad_rows = 0
    with (
        ParquetSink.open(out_uri, out_schema, config.shard_rows) as kept_sink,
        ParquetSink.open(quarantine_uri, bad_schema, config.shard_rows) as bad_sink,
    ):
        for shard_index, batch in enumerate(iter_batches(input_uri, config.shard_rows)):
            scores = _read_shard(work, shard_index, batch.num_rows)
            buckets = _buckets(scores, config)
            kept, bad = _split_batch(batch, scores, buckets)
            kept_sink.write(kept)
            bad_sink.write(bad)
            bad_rows += bad.num_rows
            _count(report, batch, scores, buckets)
    if bad_rows == 0:
        # An empty quarantine is noise in the output folder: only a real one is left behind.
        bad_store, bad_name = ArtifactStore.for_file(quarantine_uri)
        bad_store.delete(bad_name)
    return kept_sink.ref, (bad_sink.ref if bad_rows else None), report  # type: ignore[return-value]


def _read_shard(work: ArtifactStore, shard_index: int, expected_rows: int) -> dict[str, list[Any]]:
    name = shard_name(shard_index)
    if not work.exists(name):
        raise RuntimeError(f"shard {shard_index} has no scores in {work.root}: scoring did not finish")
    with work.open(name) as handle:
        frame = pl.read_parquet(handle).sort("row_index")
    if frame.height != expected_rows:
        raise RuntimeError(f"{work.uri(name)} holds {frame.height} rows, the input shard {expected_rows}")
    return frame.to_dict(as_series=False)


def _buckets(scores: dict[str, list[Any]], config: FilterConfig) -> list[str]:
    return [
        BUCKET_QUARANTINED if reason is not None else bucket_for(rate, config)
        for rate, reason in zip(scores["pass_rate"], scores["reason"], strict=True)
    ]


def _split_batch(
    batch: pa.RecordBatch, scores: dict[str, list[Any]], buckets: list[str]
) -> tuple[pa.Table, pa.Table]:
    table = pa.Table.from_batches([batch])
    kept_mask = pa.array([b not in (BUCKET_TRIVIAL, BUCKET_QUARANTINED) for b in buckets])
    bad_mask = pa.array([b == BUCKET_QUARANTINED for b in buckets])
    kept = table.append_column("pass_rate", pa.array(scores["pass_rate"], pa.float64()))
    kept = kept.append_column("bucket", pa.array(buckets, pa.string()))
    kept = kept.append_column("weak_answers", pa.array(scores["weak_answers"], pa.string())).filter(kept_mask)
    bad = table.append_column("reason", pa.array(scores["reason"], pa.string())).filter(bad_mask)
    return kept, bad


def _count(report: FilterReport, batch: pa.RecordBatch, scores: dict[str, list[Any]], buckets: list[str]) -> None:
    sources = batch.column("data_source").to_pylist() if "data_source" in batch.schema.names else [None] * len(buckets)
    for source, rate, bucket in zip(sources, scores["pass_rate"], buckets, strict=True):
        report.add(str(source) if source is not None else "(none)", bucket, rate)


def _beside(uri: str, suffix: str) -> str:
    stem = uri.removesuffix(".parquet")
    return stem + suffix
