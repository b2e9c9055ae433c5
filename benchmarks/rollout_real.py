"""One Mini-CodeDance RL step, for real: the hf engine's two decode loops side by side in one run.

The workload is what the mini's RL arms spend their time on: a tool-SFT-like policy of the mini's
size (the `tiny` profile's model with the experiment's init) writing long code turns for the task
suite's prompts, 4 prompts x 4 samples (GRPO's step), up to 3 turns of up to 1024 tokens at
temperature 0.7, every snippet run in the real sandbox, then scoring (the RL reward) and one GRPO
update of the same model.

The policy: a real tool-SFT model takes the mini's pretraining (minutes to an hour), so instead the
tiny model is imprinted (`models/imprint.py`) on the suite's own verified trajectories, written by
the synthesis programs and run in the sandbox (the very conversations tool SFT trains on: the
shape-finding scripts are hundreds of tokens). It then writes those long code turns when sampled.
It is built once and cached under `.codedance/bench-cache/` (keyed by its settings).

Each engine (`generate`: transformers' generate; `static`: the engine's own loop over a static KV
cache, `engines/decode.py`) runs the step from the same saved weights and seed, `--repeats` times,
interleaved so that load from elsewhere hits both. Prints JSON: per engine and run, generated
tokens/s (over the engine's busy time), trajectories/s (over the rollout and over the whole step),
and the step's time split: generation (wall of the rollout, and engine busy time), sandbox,
scoring, update; then the speed-up of `static` over `generate` (medians).

    .venv/bin/python benchmarks/rollout_real.py [--prompts 4 --samples 4 --repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch

from codedance_core.agent.items import item_from_rl_row
from codedance_core.agent.rollout import Rollout
from codedance_core.agent.trajectory import RolloutItem
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.config.data import SuiteSpec
from codedance_core.config.loader import load_profile
from codedance_core.data.suite import generate_rows
from codedance_core.engines.hf import HFEngine
from codedance_core.experiments.mini import EXPERIMENT_OVERRIDES
from codedance_core.models import build_tiny_model, load_model_bundle
from codedance_core.models.images import pixel_bounds
from codedance_core.models.imprint import imprint_conversations
from codedance_core.models.tiny import suite_corpus
from codedance_core.sandbox import SandboxPool
from codedance_core.synthesis.pipeline import synthesize_rows
from codedance_core.train.distributed import DistContext
from codedance_core.train.grpo_step import Policy, score_batch, update_policy
from codedance_core.train.sharded import Optimization

CACHE = Path(".codedance/bench-cache")
ENGINES = ("generate", "static")
FAMILIES = ["count", "search", "chart", "math"]  # the visual families: the ones that write long code


def profile():
    # The mini's settings: its init (0.02), its RL learning rate and temperature.
    return load_profile("tiny", list(EXPERIMENT_OVERRIDES))


def suite_rows(count: int, seed: int) -> list[dict]:
    return list(generate_rows(SuiteSpec(n=count, seed=seed, split="train", families=FAMILIES)))


def trajectory_turns(outcome) -> list[tuple[str, str | None]]:
    return [
        (turn.text, turn.observation.text if turn.observation is not None else None)
        for turn in outcome.trajectory.turns
    ]


async def build_policy(out_dir: Path, args) -> dict:
    """The tiny model of the mini's shape, imprinted on verified suite trajectories; saved in `out_dir`."""
    settings = profile()
    model_config = settings.tiny_model.model_copy(update={"pretrain_text_steps": 0, "pretrain_steps": 0})
    build_tiny_model(out_dir, suite_corpus(rows=model_config.corpus_rows, seed=0), model_config)
    bundle = load_model_bundle(out_dir, device="cpu", dtype="float32")
    rows = suite_rows(args.imprint_rows * 3, seed=0)
    async with SandboxPool(settings.sandbox) as pool:
        outcomes = await synthesize_rows(rows, pool, settings.synthesis_config())
    min_pixels, max_pixels = pixel_bounds(bundle.image_processor)
    conversations, lengths = [], []
    for outcome in outcomes:
        # Observations with images would need their pads: keep the (many) text-only ones.
        if not outcome.kept or any(t.observation and t.observation.images for t in outcome.trajectory.turns):
            continue
        item = item_from_rl_row(rows[outcome.index], outcome.index, min_pixels, max_pixels)
        turns = trajectory_turns(outcome)
        conversations.append((to_model_messages(item.messages), item.images, turns))
        lengths.append(sum(len(bundle.tokenizer.encode(text)) for text, _ in turns))
        if len(conversations) == args.imprint_rows:
            break
    started = time.perf_counter()
    loss = imprint_conversations(bundle, conversations, steps=args.imprint_steps, lr=3e-3)
    bundle.model.save_pretrained(str(out_dir))
    indices = [outcome.index for outcome in outcomes if outcome.kept][: len(conversations)]
    record = {
        "rows": indices,
        "imprint_loss": round(loss, 4),
        "imprint_s": round(time.perf_counter() - started, 1),
        "assistant_tokens": lengths,
    }
    (out_dir / "bench.json").write_text(json.dumps(record))
    return record


def policy_dir(args) -> Path:
    """The cached policy for these settings, built on first use."""
    key = json.dumps(
        [profile().tiny_model.model_dump(), args.imprint_rows, args.imprint_steps, 1], sort_keys=True
    )
    out = CACHE / f"rollout-real-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if not (out / "bench.json").exists():
        building = Path(
            tempfile.mkdtemp(prefix="rollout-real-", dir=CACHE.parent if CACHE.parent.exists() else None)
        )
        asyncio.run(build_policy(building, args))
        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        building.rename(out)
    return out


def step_items(model_dir: Path, bundle, args) -> list[RolloutItem]:
    record = json.loads((model_dir / "bench.json").read_text())
    rows = suite_rows(max(record["rows"]) + 1, seed=0)
    min_pixels, max_pixels = pixel_bounds(bundle.image_processor)
    chosen = [record["rows"][i % len(record["rows"])] for i in range(args.prompts)]
    return [item_from_rl_row(rows[index], index, min_pixels, max_pixels) for index in chosen]


async def one_step(model_dir: Path, engine_name: str, args) -> dict:
    """Roll out, score and update once, from the saved weights, with one engine."""
    settings = profile()
    grpo = settings.grpo.model_copy(update={"samples_per_prompt": args.samples})
    bundle = load_model_bundle(model_dir, device="cpu", dtype="float32")
    engine = HFEngine(bundle, max_batch_size=settings.engine.max_batch_size, decode=engine_name)
    config = settings.rollout_for("rl").for_stage(samples_per_prompt=args.samples, seed=args.seed)
    items = step_items(model_dir, bundle, args)
    dist = DistContext()
    optimization = Optimization.build(bundle.model, grpo, dist, lambda step: 1.0)
    policy = Policy(optimization.model, bundle, optimization, grpo, dist, config.temperature)
    async with SandboxPool(settings.sandbox) as pool:
        loop = Rollout(engine, pool, config, bundle=bundle)
        started = time.perf_counter()
        trajectories = await loop.run(items)
        rolled = time.perf_counter()
        scored = await score_batch(trajectories, args.samples, settings.rewards)
        scored_at = time.perf_counter()
        update_policy(policy, scored)
        finished = time.perf_counter()
    stats = loop.stats
    tokens = sum(turn.generated_tokens for t in trajectories for turn in t.turns)
    code_turns = [turn.generated_tokens for t in trajectories for turn in t.turns if turn.code is not None]
    return {
        "trajectories": len(trajectories),
        "generated_tokens": tokens,
        "generated_tokens_per_s": round(tokens / stats.engine_s, 1),
        "trajectories_per_s_rollout": round(len(trajectories) / (rolled - started), 4),
        "trajectories_per_s_step": round(len(trajectories) / (finished - started), 4),
        "seconds": {
            "rollout_wall": round(rolled - started, 2),
            "generation_engine": round(stats.engine_s, 2),
            "sandbox": round(stats.sandbox_s, 2),
            "scoring": round(scored_at - rolled, 3),
            "update": round(finished - scored_at, 2),
            "step": round(finished - started, 2),
        },
        "engine_calls": stats.engine_calls,
        "mean_batch_size": round(stats.mean_batch_size, 1),
        "code_turn_tokens_max": max(code_turns, default=0),
        "code_turn_tokens_mean": round(statistics.mean(code_turns), 1) if code_turns else 0,
        "tool_calls": sum(t.tool_calls for t in trajectories),
        "accuracy": round(float(sum(s.accuracy for s in scored.scores)) / len(trajectories), 3),
        "finish_reasons": stats.finish_reasons,
    }


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step (GRPO's prompts_per_step)")
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt (GRPO's group size)")
    parser.add_argument("--repeats", type=int, default=2, help="steps per engine, interleaved")
    parser.add_argument("--seed", type=int, default=0, help="the step's sampling seed (both engines)")
    parser.add_argument("--imprint-rows", type=int, default=8, help="trajectories the policy is imprinted on")
    parser.add_argument("--imprint-steps", type=int, default=150, help="imprint steps (built once, cached)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    args = parser.parse_args()
    model_dir = policy_dir(args)
    runs: dict[str, list[dict]] = {name: [] for name in args.engines}
    for _ in range(args.repeats):
        for name in args.engines:
            runs[name].append(asyncio.run(one_step(model_dir, name, args)))
    report: dict = {
        "workload": {
            "policy": str(model_dir),
            **json.loads((model_dir / "bench.json").read_text()),
            "prompts": args.prompts,
            "samples": args.samples,
            "rollout": profile().rollout_for("rl").model_dump(),
        },
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "runs": runs,
    }
    if set(ENGINES) <= set(runs):
        report["speedup_static_over_generate"] = {
            key: round(median(runs["static"], key) / median(runs["generate"], key), 2)
            for key in ("generated_tokens_per_s", "trajectories_per_s_rollout", "trajectories_per_s_step")
        }
    report["load_average"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
