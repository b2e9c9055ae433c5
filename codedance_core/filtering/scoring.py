"""The weak model's pass rate on a shard of candidate items, and the bucket a pass rate falls in.

A shard of RL rows becomes rollout items (a row that cannot become one is quarantined with the
reason, never dropped), the weak model answers each item k times through the same multi-turn
loop RL and evaluation use (so a weak model that calls tools is scored exactly as it would act),
and each answer is scored by the rewards module's accuracy rules. The pass rate is the share
of correct answers among those the scorer could grade: an answer the LLM judge failed to grade
is unknown, not wrong, so it leaves the denominator instead of lowering the rate.

The weak model is any engine: a local checkpoint (token-in/token-out through its bundle) or an
OpenAI-compatible endpoint. Its identity (`WeakModel.model_id`) is a digest of the checkpoint's
files, or the endpoint's served model name: it keys the work dir, so scores are only reused for
the same model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedance_core.agent.items import item_from_rl_row
from codedance_core.agent.rollout import Rollout
from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.config.agent import RolloutConfig, RolloutSettings
from codedance_core.config.filtering import BUCKET_HARD, BUCKET_MEDIUM, BUCKET_TRIVIAL, FilterConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.engines.base import GenerationEngine
from codedance_core.models.bundle import ModelBundle
from codedance_core.models.images import pixel_bounds
from codedance_core.rewards.judge import LLMJudge
from codedance_core.rewards.score import score_trajectories
from codedance_core.sandbox import SandboxPool

# How much of each weight file goes into a checkpoint's identity: a 7B's 15 GB are not re-read
# per run, and a retrained checkpoint differs in its first and last bytes anyway.
_ID_HEAD_TAIL_BYTES = 4 << 20


@dataclass
class WeakModel:
    """The engine that answers, who it is (for the work-dir key), and its bundle when local."""

    engine: GenerationEngine
    model_id: str
    bundle: ModelBundle | None = None


def checkpoint_id(model_dir: str | Path) -> str:
    """'ckpt:<sha256>' over every file's name, size, and first and last 4 MiB."""
    digest = hashlib.sha256()
    root = Path(model_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(root)}\0{size}\0".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(_ID_HEAD_TAIL_BYTES))
            if size > 2 * _ID_HEAD_TAIL_BYTES:
                handle.seek(size - _ID_HEAD_TAIL_BYTES)
                digest.update(handle.read())
    return "ckpt:" + digest.hexdigest()


def local_weak_model(model_dir: str | Path, device: str = "auto", max_batch_size: int = 64) -> WeakModel:
    """A checkpoint directory loaded in-process (the tiny profile's weak model)."""
    from codedance_core.engines.hf import HFEngine
    from codedance_core.models.bundle import load_model_bundle

    bundle = load_model_bundle(model_dir, device=device)
    return WeakModel(HFEngine(bundle, max_batch_size=max_batch_size), checkpoint_id(model_dir), bundle)


def endpoint_weak_model(base_url: str, served_model: str = "", api_key: str | None = None) -> WeakModel:
    """A model behind an OpenAI-compatible endpoint; its id is the served model's name."""
    from codedance_core.engines.openai import OpenAIEngine

    engine = OpenAIEngine([base_url], model=served_model, api_key=api_key)
    return WeakModel(engine, f"endpoint:{served_model or base_url}")


def bucket_for(pass_rate: float, config: FilterConfig) -> str:
    """trivial (dropped), hard or medium, by the configured edges."""
    if pass_rate >= config.trivial_threshold:
        return BUCKET_TRIVIAL
    return BUCKET_HARD if pass_rate <= config.hard_max_pass_rate else BUCKET_MEDIUM


def rollout_config(config: FilterConfig, shard_index: int, inherited: RolloutSettings | None = None) -> RolloutConfig:
    """The loop's config for one shard: the filter's effective settings (`inherited`, the profile's
    rollout section, with `config.rollout` applied), k samples per item, and a seed that moves with
    the shard so resumes are reproducible."""
    seed = None if config.seed is None else config.seed + shard_index
    return config.rollout_settings(inherited).for_stage(samples_per_prompt=config.k, seed=seed)


def rows_to_items(
    rows: list[dict[str, Any]], first_index: int, bounds: tuple[int, int]
) -> tuple[list[tuple[int, RolloutItem]], dict[int, str]]:
    """(row index, item) for the good rows and {row index: reason} for the rest."""
    items: list[tuple[int, RolloutItem]] = []
    bad: dict[int, str] = {}
    for offset, row in enumerate(rows):
        index = first_index + offset
        try:
            items.append((index, item_from_rl_row(row, index, *bounds)))
        except Exception as exc:  # noqa: BLE001 -- any row problem (schema, image) is the row's, not the run's
            first_line = (str(exc).strip().splitlines() or [""])[0]
            bad[index] = f"{type(exc).__name__}: {first_line}"[:500]
    return items, bad


async def score_shard(
    rows: list[dict[str, Any]],
    first_index: int,
    shard_index: int,
    weak: WeakModel,
    pool: SandboxPool,
    config: FilterConfig,
    reward_config: RewardConfig | None = None,
    judge: LLMJudge | None = None,
    rollout: RolloutSettings | None = None,
) -> list[dict[str, Any]]:
    """One record per row: row_index, pass_rate, n_correct, n_graded, weak_answers (json), reason.

    `reason` is set (and pass_rate None) for quarantined rows: unreadable ones, and items none
    of whose answers could be graded. `rollout`: the inherited loop settings (see `rollout_config`).
    """
    bounds = pixel_bounds(weak.bundle.image_processor) if weak.bundle else (config.min_pixels, config.max_pixels)
    indexed_items, bad = rows_to_items(rows, first_index, bounds)
    records = {index: _quarantine_record(index, reason) for index, reason in bad.items()}
    if indexed_items:
        loop = Rollout(weak.engine, pool, rollout_config(config, shard_index, rollout), bundle=weak.bundle)
        trajectories = await loop.run([item for _, item in indexed_items])
        scores = await score_trajectories([t.scoring_input() for t in trajectories], reward_config, judge)
        for position, (index, _) in enumerate(indexed_items):
            group = slice(position * config.k, (position + 1) * config.k)
            records[index] = _item_record(index, trajectories[group], scores[group])
    return [records[first_index + offset] for offset in range(len(rows))]


def _item_record(index: int, trajectories: list[Trajectory], scores: list) -> dict[str, Any]:
    graded = [score for score in scores if score.valid]
    correct = sum(1 for score in graded if score.accuracy >= 0.5)
    answers = json.dumps([t.answer for t in trajectories])
    if not graded:
        reason = "ungraded: no answer could be scored (judge errors)"
        return {**_quarantine_record(index, reason), "weak_answers": answers}
    return {
        "row_index": index,
        "pass_rate": correct / len(graded),
        "n_correct": correct,
        "n_graded": len(graded),
        "weak_answers": answers,
        "reason": None,
    }


def _quarantine_record(index: int, reason: str) -> dict[str, Any]:
    return {
        "row_index": index,
        "pass_rate": None,
        "n_correct": 0,
        "n_graded": 0,
        "weak_answers": "[]",
        "reason": reason,
    }
