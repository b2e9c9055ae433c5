"""Synthesis of a whole file: route each RL item to a writer, verify, write kept rows and rejects.

Routing: an item of a family with a program writer (and not sent to the teacher by config) gets
a program-written trajectory; any other item goes to the teacher when one is configured, else
it is rejected as `no_program`. A share of tool trajectories starts with a planned failure
(`failure_rate`), drawn per item from (seed, data_source, index), so a rerun writes the same
rows. Items are synthesised `concurrency` at a time, each in its own sandbox session; input is
streamed in batches and output rows keep the input order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from codedance_core.config.synthesis import SynthesisConfig
from codedance_core.data.io import ParquetSink, iter_batches
from codedance_core.data.schemas import MESSAGE_STRUCT, SFT_ARROW_SCHEMA
from codedance_core.engines.openai import OpenAIEngine
from codedance_core.sandbox import SandboxPool
from codedance_core.storage import ArtifactRef
from codedance_core.synthesis.arithmetic import write_direct, write_math
from codedance_core.synthesis.chart import write_chart
from codedance_core.synthesis.count import write_count
from codedance_core.synthesis.failures import with_typo_first
from codedance_core.synthesis.items import BadItem, SynthesisItem, prepare_item
from codedance_core.synthesis.search import write_search
from codedance_core.synthesis.stats import SynthesisStats
from codedance_core.synthesis.teacher import run_teacher
from codedance_core.synthesis.verify import (
    Rejected,
    Trajectory,
    assemble_row,
    check_answer,
    run_program,
    transcript,
)

WRITERS = {"count": write_count, "search": write_search, "chart": write_chart, "math": write_math,
           "direct": write_direct}
TOOL_FREE_FAMILIES = {"direct"}

REJECTS_ARROW_SCHEMA = pa.schema([
    ("index", pa.int64()),
    ("data_source", pa.string()),
    ("family", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("messages", pa.list_(MESSAGE_STRUCT)),
])


@dataclass
class Outcome:
    """What became of one item: an SFT row, or a rejection with its reason."""

    index: int
    data_source: str
    family: str
    row: dict[str, Any] | None = None
    trajectory: Trajectory | None = None
    reason: str = ""
    detail: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return self.row is not None

    def reject_record(self) -> dict[str, Any]:
        return {"index": self.index, "data_source": self.data_source, "family": self.family,
                "reason": self.reason, "detail": self.detail[:2000], "messages": self.messages}


def failure_plan(config: SynthesisConfig, item: SynthesisItem) -> tuple[random.Random, str | None]:
    """The item's random stream and its plan: None, or 'typo' for a planned first failure;
    'needless_tool' for a tool-free item that calls the tool anyway."""
    rng = random.Random(f"{config.seed}:{item.data_source}:{item.index}")
    if item.family in TOOL_FREE_FAMILIES:
        return rng, ("needless_tool" if rng.random() < config.needless_tool_rate else None)
    if rng.random() >= config.failure_rate:
        return rng, None
    return rng, "typo"


def uses_program(config: SynthesisConfig, family: str) -> bool:
    sent_to_teacher = config.teacher is not None and family in config.teacher.families
    return family in WRITERS and family in config.families and not sent_to_teacher


async def synthesize_item(
    item: SynthesisItem, pool: SandboxPool, config: SynthesisConfig, teacher: OpenAIEngine | None = None
) -> Outcome:
    """One item's verified trajectory as an SFT row, or its rejection."""
    outcome = Outcome(item.index, item.data_source, item.family)
    if not uses_program(config, item.family) and teacher is None:
        outcome.reason, outcome.detail = "no_program", f"no program writer for family {item.family!r} and no teacher"
        outcome.messages = transcript(item, [])
        return outcome
    session = await pool.open_session(item.image)
    try:
        if uses_program(config, item.family):
            rng, plan = failure_plan(config, item)
            writer = WRITERS[item.family](item.view(rng, plan))
            if plan == "typo":
                writer = with_typo_first(writer)
            loop = config.loop_settings
            trajectory = await run_program(
                writer, session, loop.max_turns, config.sandbox.timeout_s, loop.observation_max_chars
            )
        else:
            assert teacher is not None and config.teacher is not None
            trajectory = await run_teacher(item, session, teacher, config)
        check_answer(item, trajectory, config.rewards)
        outcome.row, outcome.trajectory = assemble_row(item, trajectory), trajectory
    except Rejected as rejected:
        outcome.reason, outcome.detail = rejected.reason, rejected.detail
        outcome.messages = transcript(item, rejected.turns)
    finally:
        await session.close()
    return outcome


def record(stats: SynthesisStats, outcome: Outcome) -> None:
    if outcome.trajectory is not None:
        trajectory = outcome.trajectory
        stats.record_kept(outcome.family, len(trajectory.turns), trajectory.tool_calls, trajectory.failed_calls,
                          trajectory.source == "teacher")
    else:
        stats.record_rejected(outcome.family, outcome.reason)


async def synthesize_rows(
    rows: Iterable[dict[str, Any]],
    pool: SandboxPool,
    config: SynthesisConfig,
    teacher: OpenAIEngine | None = None,
    start: int = 0,
) -> list[Outcome]:
    """Outcomes of a batch of RL rows, in input order, `config.concurrency` items at a time."""
    slots = asyncio.Semaphore(config.concurrency)

    async def one(position: int, raw: dict[str, Any]) -> Outcome:
        try:
            item = prepare_item(raw, position, config)
        except BadItem as error:
            family = str((raw.get("extra_info") or {}).get("family") or raw.get("ability") or "unknown")
            return Outcome(position, str(raw.get("data_source")), family, reason="bad_item", detail=str(error))
        async with slots:
            return await synthesize_item(item, pool, config, teacher)

    return list(await asyncio.gather(*(one(start + i, raw) for i, raw in enumerate(rows))))


@dataclass
class SynthesisReport:
    """Where the rows went and the run's statistics."""

    out: ArtifactRef
    rejects: ArtifactRef | None
    stats: SynthesisStats


async def synthesize_file_async(
    input_uri: str,
    out_uri: str,
    config: SynthesisConfig,
    rejects_uri: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SynthesisReport:
    """Stream an RL parquet into verified SFT rows at `out_uri` (rejects at `rejects_uri`)."""
    stats, started = SynthesisStats(), time.perf_counter()
    teacher = OpenAIEngine.from_config(config.teacher.engine) if config.teacher else None
    rejects: list[dict[str, Any]] = []
    position = 0
    try:
        async with SandboxPool(config.sandbox) as pool:
            with ParquetSink.open(out_uri, SFT_ARROW_SCHEMA, row_group_rows=config.batch_rows) as sink:
                for batch in iter_batches(input_uri, batch_rows=config.batch_rows):
                    outcomes = await synthesize_rows(batch.to_pylist(), pool, config, teacher, start=position)
                    position += batch.num_rows
                    sink.write_rows([outcome.row for outcome in outcomes if outcome.row is not None])
                    for outcome in outcomes:
                        record(stats, outcome)
                        if not outcome.kept:
                            rejects.append(outcome.reject_record())
                    if on_progress:
                        on_progress(batch.num_rows)
    finally:
        if teacher is not None:
            await teacher.aclose()
    rejects_ref = None
    if rejects_uri is not None:
        with ParquetSink.open(rejects_uri, REJECTS_ARROW_SCHEMA) as reject_sink:
            reject_sink.write_rows(rejects)
        rejects_ref = reject_sink.ref
    stats.seconds = time.perf_counter() - started
    assert sink.ref is not None
    return SynthesisReport(out=sink.ref, rejects=rejects_ref, stats=stats)


def synthesize_file(
    input_uri: str,
    out_uri: str,
    config: SynthesisConfig,
    rejects_uri: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SynthesisReport:
    """Blocking `synthesize_file_async` (do not call from inside a running event loop)."""
    return asyncio.run(synthesize_file_async(input_uri, out_uri, config, rejects_uri, on_progress))
