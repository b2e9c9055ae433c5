"""Rollout throughput: the batched tool loop against a naive one-conversation-at-a-time loop.

Workload: the tiny model on CPU, 64 prompts x 4 samples, up to 4 turns, code run in the
real sandbox (isolation on). The tiny model is first taught a two-turn tool trajectory (code on the
image, then an answer) so that rollouts really call the tool; sampling at temperature 0.7 keeps
some variety. The naive loop runs the same `Rollout` over one trajectory at a time, so each tool
call blocks and every generation is a batch of one. Both loops run over the same model, so both
get its per-model caches (processed pixels, vision-tower outputs: an image is encoded once, not at
every turn): the speed-up is batching's, not caching's.

Prints JSON: trajectories/s of both, the speed-up, tool calls made, and the share of sandbox time
hidden behind generation in the batched loop.

    .venv/bin/python benchmarks/rollout.py [--prompts 64 --samples 4 --turns 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time

os.environ.setdefault("DS_ACCELERATOR", "cpu")

from PIL import Image

from codedance_core.agent.rollout import Rollout
from codedance_core.agent.trajectory import RolloutItem
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.chat_format.observation import format_observation
from codedance_core.config.agent import RolloutConfig
from codedance_core.config.model import TinyModelConfig
from codedance_core.engines.hf import HFEngine, vision_cache
from codedance_core.models import build_tiny_model, load_model_bundle
from codedance_core.models.imprint import imprint_conversation
from codedance_core.models.tiny import suite_corpus
from codedance_core.sandbox import SandboxConfig, SandboxPool

CODE = "crop = input_image.crop((0, 0, 112, 112)).resize((224, 224))\nprint(crop.size)\n"
TURN_1 = f"<think>zoom in</think><code>\n```python\n{CODE}```\n</code>"
TURN_2 = "<think>seen it</think><answer>red</answer>"
MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "<image>\nWhat colour is it?"}]


def make_item(index: int) -> RolloutItem:
    image = Image.new("RGB", (448, 448), "red")
    return RolloutItem(item_id=str(index), messages=[dict(m) for m in MESSAGES], images=[image], gold="red")


async def run_batched(bundle, pool, config, items):
    loop = Rollout(HFEngine(bundle), pool, config, bundle=bundle)
    trajectories = await loop.run(items)
    return trajectories, loop.stats


async def run_naive(bundle, pool, config, items):
    one = config.model_copy(update={"samples_per_prompt": 1})
    trajectories = []
    for item in items:
        for _ in range(config.samples_per_prompt):
            trajectories.extend(await Rollout(HFEngine(bundle), pool, one, bundle=bundle).run([item]))
    return trajectories


async def measure(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(tmp, suite_corpus(rows=60, seed=0), TinyModelConfig())
        bundle = load_model_bundle(model_dir, device="cpu", dtype="float32")
        async with SandboxPool(SandboxConfig(workers=2)) as pool:
            observation = format_observation(await pool.run_once(make_item(0).images[0], CODE)).text
            image = make_item(0).images
            imprint_conversation(bundle, to_model_messages(MESSAGES), image, [(TURN_1, observation), (TURN_2, None)])
            config = RolloutConfig(
                max_turns=args.turns, max_new_tokens=args.max_new_tokens, temperature=0.7,
                samples_per_prompt=args.samples, seed=0,
            )
            items = [make_item(i) for i in range(args.prompts)]
            started = time.perf_counter()
            batched, stats = await run_batched(bundle, pool, config, items)
            batched_s = time.perf_counter() - started
            naive_items = items[: args.naive_prompts]
            started = time.perf_counter()
            naive = await run_naive(bundle, pool, config, naive_items)
            naive_s = time.perf_counter() - started
        vision = vision_cache(bundle.model)
    batched_rate = len(batched) / batched_s
    naive_rate = len(naive) / naive_s
    return {
        "workload": {"prompts": args.prompts, "samples": args.samples, "max_turns": args.turns,
                     "naive_prompts": args.naive_prompts, "cpus": os.cpu_count()},
        "batched": {"trajectories": len(batched), "seconds": round(batched_s, 2),
                    "trajectories_per_s": round(batched_rate, 2),
                    "tool_calls": sum(t.tool_calls for t in batched),
                    "engine_calls": stats.engine_calls, "engine_s": round(stats.engine_s, 2),
                    "sandbox_s": round(stats.sandbox_s, 2),
                    "sandbox_hidden_fraction": round(stats.sandbox_hidden_fraction, 3)},
        "naive": {"trajectories": len(naive), "seconds": round(naive_s, 2),
                  "trajectories_per_s": round(naive_rate, 2),
                  "tool_calls": sum(t.tool_calls for t in naive)},
        "speedup": round(batched_rate / naive_rate, 2),
        "target_speedup": 5.0,
        "vision_cache": {"hits": vision.hits, "misses": vision.misses},
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--naive-prompts", type=int, default=16, help="Prompts the (slow) naive loop runs; rates compare.")
    print(json.dumps(asyncio.run(measure(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
