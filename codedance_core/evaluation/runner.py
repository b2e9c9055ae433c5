"""The evaluation run: load a benchmark, roll out every item with the tool loop, score, write, report.

One process, one event loop, one sandbox pool. The original started a pool of 32 processes,
each with its own client and its own copy of everything; waiting on a model endpoint is I/O,
so here items are coroutines instead: `num_workers` of them in flight share one HTTP client
(keep-alive connections, load-balanced base URLs), and memory does not grow with concurrency.

- With a served model (HTTP engine) each item is its own small rollout, `num_workers` at a
  time, so a slow item never holds back the others.
- With a local checkpoint (`--model DIR`) items go to the tool loop `num_workers` at a time,
  so the engine generates their turns as one batch.

Scoring is the reward's (`score_trajectories`: rules, then one judge round), with the
benchmark's scorer. Rows are appended as items finish (see `results.py` for resumption), and
the stats, the viewer and the plot are rebuilt from the final rows only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedance_core.agent.rollout import Rollout
from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.chat_format.prompts import PROMPT_VERSION
from codedance_core.config.agent import RolloutConfig
from codedance_core.config.evaluation import EvalConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.engines.base import GenerationEngine
from codedance_core.evaluation.predictions import write_predictions
from codedance_core.evaluation.registry import Benchmark, LoadFailure, dataset_name, get_benchmark, load_items
from codedance_core.evaluation.results import (
    ResultFile,
    failure_row,
    item_keys,
    output_paths,
    scored_keys,
    trajectory_row,
    write_images,
)
from codedance_core.evaluation.stats import run_stats
from codedance_core.rewards.judge import LLMJudge, judge_if_configured
from codedance_core.rewards.score import STATUS_JUDGE_ERROR, score_trajectories
from codedance_core.sandbox import SandboxPool


@dataclass
class EvalOutputs:
    """What a run produced: the files, the stats, and how many trajectories ran this time."""

    paths: dict[str, Path]
    stats: dict[str, Any]
    rows: list[dict[str, Any]]
    ran: int
    skipped: int


def reward_config_for(benchmark: Benchmark, config: RewardConfig, data_sources: set[str]) -> RewardConfig:
    """The reward config with the benchmark's scorer set for each of its data sources."""
    if benchmark.scorer is None:
        return config
    by_source = dict(config.scorer_by_source)
    by_source.update({source: benchmark.scorer for source in data_sources})
    return config.model_copy(update={"scorer_by_source": by_source})


def make_judge(config: EvalConfig) -> LLMJudge | None:
    """The LLM judge when enabled and an endpoint is configured; without one (one warning), answers
    no rule decides are recorded as judge_error (never a silent 0). One judge serves the whole run,
    so its model lookup and its budget for a failing judge are the run's."""
    if not config.use_judge:
        return None
    return judge_if_configured(config.rewards.judge)


def not_judged_items(rows: Sequence[dict[str, Any]]) -> int:
    """Items with a sample the judge did not grade: their accuracy counts as 0 but is unknown."""
    return len({str(row["item_id"]) for row in rows if row.get("status") == STATUS_JUDGE_ERROR})


def accuracy_headline(stats: dict[str, Any]) -> str:
    """'accuracy 12.5% (40 items; 8 not judged: judge_error)': the one line to read first."""
    counts = f"{stats['items']} items"
    if stats.get("not_judged"):
        counts += f"; {stats['not_judged']} not judged: judge_error"
    return f"accuracy {100 * stats['accuracy']:.1f}% ({counts})"


class EvalRunner:
    """Evaluates one model on one benchmark; `await runner.run()` does everything."""

    def __init__(
        self,
        config: EvalConfig,
        engine: GenerationEngine,
        model_name: str,
        *,
        bundle: Any = None,
        pixel_bounds: tuple[int, int] | None = None,
        show_progress: bool = True,
        batched: bool | None = None,
    ) -> None:
        """`batched`: the engine runs in this process and generates batches one at a time (hf, vLLM):
        items go to it `num_workers` at a time. Else (a served model) each item is its own request,
        `num_workers` in flight. Default: batched when a local bundle is given."""
        self.config = config
        self.engine = engine
        self.model_name = model_name
        self.bundle = bundle
        self.batched = bundle is not None if batched is None else batched
        self.pixel_bounds = pixel_bounds or (config.min_pixels, config.max_pixels)
        self.show_progress = show_progress
        self.benchmark = get_benchmark(config.benchmark)
        loop = config.rollout.for_stage(samples_per_prompt=config.samples, seed=config.seed)
        # Evaluation's own choice: sandbox processes start early, behind generation, only for a
        # local model; for a remote one on demand, since the harness is latency-bound and every
        # live process costs memory.
        self.rollout_config: RolloutConfig = loop.model_copy(
            update={"early_sessions": loop.early_sessions and bundle is not None}
        )

    async def run(self) -> EvalOutputs:
        loaded = load_items(
            self.benchmark,
            self.config.data_path,
            *self.pixel_bounds,
            limit=self.config.limit,
            data_source=self.config.data_source,
            prompt=self.config.prompt,
        )
        dataset = dataset_name(self.benchmark, Path(self.config.data_path), self.config.data_source)
        self.paths = output_paths(Path(self.config.save_path), self.model_name, dataset)
        self.results = ResultFile(self.paths["result"])
        wanted = {key for item in loaded for key in item_keys(item, self.config.samples)}
        done = scored_keys(self._same_prompt(self.results.load())) & wanted
        pending = [item for item in loaded if not set(item_keys(item, self.config.samples)) <= done]
        self._write_load_failures([item for item in pending if isinstance(item, LoadFailure)], done)
        items = [item for item in pending if isinstance(item, RolloutItem)]
        sources = {item.data_source for item in items}
        self.rewards = reward_config_for(self.benchmark, self.config.rewards, sources)
        self.judge = make_judge(self.config)
        if items:
            await self._run_items(items, done)
        rows = self._final_rows(loaded)
        stats = self._write_reports(rows, dataset)
        return EvalOutputs(self.paths, stats, rows, ran=len(items) * self.config.samples, skipped=len(done))

    def _same_prompt(self, written: dict) -> dict:
        """Rows written with another prompt choice are not this run's: they are done again."""
        return {key: row for key, row in written.items() if row.get("prompt", self.config.prompt) == self.config.prompt}

    # -- rolling out and scoring ------------------------------------------------------------------
    async def _run_items(self, items: list[RolloutItem], done: set) -> None:
        unit_size = self.config.num_workers if self.batched else 1
        units = [items[start : start + unit_size] for start in range(0, len(items), unit_size)]
        limit = asyncio.Semaphore(1 if self.batched else self.config.num_workers)
        progress = _progress(len(items), self.show_progress, f"{self.model_name} on {self.benchmark.name}")
        async with SandboxPool(self.config.sandbox) as pool:

            async def run_unit(unit: list[RolloutItem]) -> None:
                async with limit:
                    trajectories = await Rollout(
                        self.engine, pool, self.rollout_config, bundle=self.bundle
                    ).run(unit)
                    rows = await self._score(trajectories, done)
                    await asyncio.to_thread(self.results.append, rows)
                    progress.update(len(unit))

            try:
                await asyncio.gather(*(run_unit(unit) for unit in units))
            finally:
                progress.close()

    async def _score(self, trajectories: Sequence[Trajectory], done: set) -> list[dict[str, Any]]:
        inputs = [t.scoring_input() for t in trajectories]
        scores = await score_trajectories(inputs, self.rewards, self.judge)
        return await asyncio.to_thread(self._rows, trajectories, scores, done)

    def _rows(self, trajectories, scores, done: set) -> list[dict[str, Any]]:
        # PNG encoding is CPU work: it runs in a thread so the event loop keeps other items moving.
        rows = []
        for trajectory, score in zip(trajectories, scores, strict=True):
            if (trajectory.item.item_id, trajectory.sample_index) in done:
                continue
            images = write_images(trajectory, self.paths["images"], self.paths["result"].parent)
            rows.append({**trajectory_row(trajectory, score, images, self.model_name), "prompt": self.config.prompt})
        return rows

    def _write_load_failures(self, failures: list[LoadFailure], done: set) -> None:
        rows = [
            {**row, "prompt": self.config.prompt}
            for failure in failures
            for row in failure_row(failure, self.model_name, self.config.samples)
            if (row["item_id"], row["sample_index"]) not in done
        ]
        if rows:
            self.results.append(rows)

    # -- reports ----------------------------------------------------------------------------------
    def _final_rows(self, loaded: Sequence[RolloutItem | LoadFailure]) -> list[dict[str, Any]]:
        """One row per (item, sample) in benchmark order; the file is rewritten to exactly these."""
        written = self.results.load()
        rows = [
            written[key] for item in loaded for key in item_keys(item, self.config.samples) if key in written
        ]
        self.results.rewrite(rows)
        return rows

    def _write_reports(self, rows: list[dict[str, Any]], dataset: str) -> dict[str, Any]:
        stats = run_stats(rows, self.config.bootstrap_resamples)
        stats = {"model": self.model_name, "dataset": dataset, "benchmark": self.benchmark.name, **stats}
        stats["not_judged"] = not_judged_items(rows)
        stats["prompt"] = self.config.prompt
        stats["prompt_version"] = PROMPT_VERSION
        self.paths["stats"].write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        write_predictions(rows, self.paths["predictions"])
        if self.config.write_viewer:
            from codedance_core.evaluation.plots import plot_accuracy
            from codedance_core.evaluation.viewer import write_viewer

            write_viewer(rows, stats, self.paths["viewer"], self.paths["result"].parent)
            plot_accuracy(rows, self.paths["plot"], title=f"{self.model_name} on {dataset}")
        return stats


def _progress(total: int, enabled: bool, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="item", disable=not enabled, leave=False)
