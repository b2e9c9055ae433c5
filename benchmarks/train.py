"""CPU tiny training: SFT tokens/s and the GRPO step time split by phase (rollout / scoring / update).

    .venv/bin/python benchmarks/train.py [--steps 20] [--batch-size 4] [--model DIR] [--grpo-steps 4]

Builds the tiny model (unless --model is given), trains on trajectories with two images each
(user image + one tool-observation image), and prints one JSON object: mean tokens/s over the
optimizer steps after the first (warm-up) one, assistant-token share, step time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")

from PIL import Image

from codedance_core.config.train import SFTConfig
from codedance_core.data.images import encode_png
from codedance_core.train.sft import train_sft


def trajectory(index: int) -> dict:
    rng = random.Random(index)
    count, crop = rng.randint(1, 9), rng.randint(20, 60)
    color = (index % 255, 40, 90)
    return {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. You may write Python."},
            {"role": "user", "content": "<image>\nHow many dots are there?"},
            {
                "role": "assistant",
                "content": f"<think>Zoom in.</think>\n<code>\n```python\n"
                f"img = input_image.crop((0, 0, {crop}, {crop}))\nimg.show()\n```\n</code>",
            },
            {
                "role": "tool",
                "content": "<tool_response>\nExecution succeeded.\n1 image: <image>\n</tool_response>",
            },
            {"role": "assistant", "content": f"<think>I count {count}.</think>\n<answer>{count}</answer>"},
        ],
        "images": [
            {"bytes": encode_png(Image.new("RGB", (112, 112), color))},
            {"bytes": encode_png(Image.new("RGB", (56, 56), color))},
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--grpo-steps", type=int, default=4, help="GRPO steps to time (0: skip GRPO).")
    parser.add_argument("--grpo-prompts", type=int, default=2, help="Prompts per GRPO step.")
    parser.add_argument("--grpo-n", type=int, default=4, help="Rollouts per prompt.")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-train-"))
    model = args.model
    if model is None:
        from codedance_core.config.model import TinyModelConfig
        from codedance_core.models import build_tiny_model
        from codedance_core.models.tiny import suite_corpus

        model = build_tiny_model(workdir / "tiny", suite_corpus(rows=200, seed=0), TinyModelConfig())
    rows = [trajectory(i) for i in range(args.batch_size * args.steps)]
    config = SFTConfig(max_steps=args.steps, batch_size=args.batch_size, checkpoint_every=10**6)
    started = time.perf_counter()
    result = train_sft(config, rows, model, workdir / "run", progress=False)
    wall = time.perf_counter() - started
    timed = result.history[1:] or result.history
    grpo = grpo_benchmark(model, workdir, args) if args.grpo_steps else None
    print(
        json.dumps(
            {
                "benchmark": "sft_cpu_tiny",
                "grpo": grpo,
                "steps": result.steps,
                "batch_size": args.batch_size,
                "tokens_per_s": round(statistics.mean(r["tokens_per_s"] for r in timed), 1),
                "step_s_median": round(statistics.median(r["step_s"] for r in timed), 4),
                "tokens_per_sequence": round(result.data["tokens"] / result.data["examples"], 1),
                "assistant_token_share": round(result.data["label_tokens"] / result.data["tokens"], 3),
                "wall_s_including_load_and_save": round(wall, 2),
            }
        )
    )


def grpo_benchmark(model: Path, workdir: Path, args: argparse.Namespace) -> dict:
    """Median GRPO step time by phase on suite rows (all families), the first step left out as warm-up."""
    from codedance_core.config.agent import RolloutOverrides, RolloutSettings
    from codedance_core.config.data import SuiteSpec
    from codedance_core.config.sandbox import SandboxConfig
    from codedance_core.config.train import GRPOConfig
    from codedance_core.data.suite import make_row
    from codedance_core.train.grpo import train_grpo

    count = args.grpo_prompts * (args.grpo_steps + 1)
    rows = [make_row(SuiteSpec(n=count), i) for i in range(count)]
    config = GRPOConfig(
        prompts_per_step=args.grpo_prompts, samples_per_prompt=args.grpo_n, max_steps=args.grpo_steps + 1,
        learning_rate=1e-4, rollout=RolloutOverrides(max_turns=3), checkpoint_every=10**6,
    )
    result = train_grpo(
        config, rows, model, workdir / "grpo", rollout=RolloutSettings(max_new_tokens=64),
        sandbox=SandboxConfig(workers=2), progress=False,
    )
    timed = result.history[1:] or result.history
    phases = ("rollout_s", "scoring_s", "update_s", "step_s", "engine_s", "sandbox_s")
    return {
        "steps_timed": len(timed),
        "trajectories_per_step": args.grpo_prompts * args.grpo_n,
        **{f"{phase}_median": round(statistics.median(r[phase] for r in timed), 4) for phase in phases},
        "response_tokens_mean": round(statistics.mean(r["response_tokens"] for r in timed), 1),
        "tool_calls_per_trajectory": round(statistics.mean(r["tool_calls_per_trajectory"] for r in timed), 3),
    }


if __name__ == "__main__":
    main()
