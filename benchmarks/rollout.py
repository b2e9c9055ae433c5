"""Rollout throughput: the continuous tool loop against the lockstep loop, side by side in one run.

Continuous: a trajectory's next turn goes to the engine as soon as its tool result is back.
Lockstep: every turn waits for all live trajectories (what GRPO's `deterministic_rollout` runs,
and, before continuous scheduling, every GRPO run). Two workloads, each run by both loops on the
same sandbox pool (isolation on):

- `today`: the tiny model on CPU with the hf engine, 64 prompts x 4 samples, up to 4 turns. The
  model is first taught a two-turn tool trajectory (code on the image, then an answer) so that
  rollouts really call the tool; sampling at temperature 0.7 keeps some variety. Its snippets take
  milliseconds, so scheduling should change little here: the figure says the new loop is no slower.
  Each loop runs `--repeats` times, interleaved, and the median run is reported (a shared machine's
  load swings these few-second runs by 2x).
- `slow_tools`: long trajectories (6 turns: 5 code turns, then an answer) where one tool call in
  twenty sleeps 5 s, 32 prompts x 4 samples (128 trajectories, a GPU worker's share at the
  paper's scale). The engine is SCRIPTED, not a model: `ScriptedEngine` writes fixed code turns
  (a crop, an edge filter and a print, run for real in the sandbox; exactly one call in twenty,
  drawn at random, also sleeps 5 s) and takes, per engine call, `--call-ms` plus `--step-ms` for
  each token of the longest turn in the call (code turns count `--code-tokens`, answers 32), since
  a batched decode step costs about the same whatever the batch. The point is the scheduling, and
  a model on these 2 CPUs would mostly measure itself. The gain grows with the tool wait against
  the generation time: the defaults make a code turn ~0.5 s of generation.

The `slow_tools` lockstep loop also runs on a pool bounded by its templates (`--workers`, two
snippets at a time), as every loop did before the pool followed the rollout's concurrency:
`lockstep_fixed_pool` is today's GRPO on this workload.

Prints JSON: per workload and loop, trajectories/s, wall time, engine calls and mean batch size,
tool calls; and the speed-up of the continuous loop over each baseline.

    .venv/bin/python benchmarks/rollout.py [--prompts 64 --samples 4 --turns 4] [--skip-today]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence

os.environ.setdefault("DS_ACCELERATOR", "cpu")

from PIL import Image

from codedance_core.agent.rollout import Rollout, RolloutStats
from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.chat_format.observation import format_observation
from codedance_core.config.agent import RolloutConfig
from codedance_core.config.model import TinyModelConfig
from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams
from codedance_core.engines.hf import HFEngine
from codedance_core.models import build_tiny_model, load_model_bundle
from codedance_core.models.imprint import imprint_conversation
from codedance_core.models.tiny import suite_corpus
from codedance_core.sandbox import SandboxConfig, SandboxPool

CODE = "crop = input_image.crop((0, 0, 112, 112)).resize((224, 224))\nprint(crop.size)\n"
TURN_1 = f"<think>zoom in</think><code>\n```python\n{CODE}```\n</code>"
TURN_2 = "<think>seen it</think><answer>red</answer>"
MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "<image>\nWhat colour is it?"}]

SLOW_S = 5.0
SLOW_SHARE = 20  # one tool call in this many sleeps SLOW_S
ANSWER_TOKENS = 32


def make_item(index: int, colour: str = "red") -> RolloutItem:
    image = Image.new("RGB", (448, 448), colour)
    return RolloutItem(item_id=str(index), messages=[dict(m) for m in MESSAGES], images=[image], gold=colour)


def code_turn(turn: int, slow: bool) -> str:
    """A code turn of the scripted engine: real image work, and a long sleep when `slow`."""
    side = 112 + 8 * turn
    code = (
        "import numpy as np\nfrom PIL import ImageFilter\n"
        + (f"import time\ntime.sleep({SLOW_S:g})\n" if slow else "")
        + f"region = input_image.crop((0, 0, {side}, {side})).resize((224, 224))\n"
        "edges = np.asarray(region.filter(ImageFilter.FIND_EDGES), dtype=np.float32)\n"
        "print(region.size, round(float(edges.mean()), 2))\n"
    )
    return f"<think>look closer, step {turn}</think><code>\n```python\n{code}```\n</code>"


class ScriptedEngine(GenerationEngine):
    """Writes `code_turns` code turns, then an answer, at a modelled batched-decode latency.

    Which tool calls are slow is drawn once: exactly one in `SLOW_SHARE` of all (item, sample,
    turn) calls of the workload, from `seed`, so both loops face the very same slow calls.
    """

    def __init__(self, keys: Sequence[tuple], code_turns: int, code_tokens: int, step_s: float, call_s: float,
                 seed: int = 0) -> None:
        self.code_turns = code_turns
        self.code_tokens = code_tokens
        self.step_s = step_s
        self.call_s = call_s
        self.slow = set(random.Random(seed).sample(list(keys), len(keys) // SLOW_SHARE))

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        turns = [request.sample_key[-1] for request in requests]
        longest = max(self.code_tokens if turn < self.code_turns else ANSWER_TOKENS for turn in turns)
        time.sleep(self.call_s + self.step_s * min(longest, params.max_new_tokens))
        return [self._turn(request, turn) for request, turn in zip(requests, turns, strict=True)]

    def _turn(self, request: GenerationRequest, turn: int) -> Completion:
        if turn >= self.code_turns:
            return Completion("<think>done</think><answer>red</answer>")
        return Completion(code_turn(turn, tuple(request.sample_key) in self.slow), stop_string="</code>")


class FixedSlotsPool(SandboxPool):
    """The pool as it was: executions bounded by its templates, whatever the rollout's concurrency."""

    def execution_limit(self) -> int:
        return self.config.workers


async def timed(engine: GenerationEngine, pool: SandboxPool, config: RolloutConfig, items, bundle=None):
    loop = Rollout(engine, pool, config, bundle=bundle)
    started = time.perf_counter()
    trajectories = await loop.run(items)
    return trajectories, loop.stats, time.perf_counter() - started


def figures(trajectories: list[Trajectory], stats: RolloutStats, seconds: float) -> dict:
    return {
        "trajectories": len(trajectories),
        "seconds": round(seconds, 2),
        "trajectories_per_s": round(len(trajectories) / seconds, 3),
        "trajectory_s_median": round(statistics.median(t.wall_s for t in trajectories), 2),
        "trajectory_s_max": round(max(t.wall_s for t in trajectories), 2),
        "engine_calls": stats.engine_calls,
        "mean_batch_size": round(stats.mean_batch_size, 1),
        "engine_s": round(stats.engine_s, 2),
        "tool_calls": sum(t.tool_calls for t in trajectories),
        "slow_tool_calls": sum(1 for t in trajectories for turn in t.turns if turn.exec_wall_s >= SLOW_S),
        "sandbox_hidden_fraction": round(stats.sandbox_hidden_fraction, 3),
        "finish_reasons": stats.finish_reasons,
    }


def median_run(runs: list[tuple[list[Trajectory], RolloutStats, float]]) -> dict:
    """The figures of the run of median wall time, with every run's time beside them."""
    ordered = sorted(runs, key=lambda run: run[2])
    return {**figures(*ordered[len(ordered) // 2]), "seconds_of_each_run": [round(run[2], 2) for run in runs]}


def speedups(results: dict) -> dict:
    new = results["continuous"]["trajectories_per_s"]
    return {
        f"continuous_over_{name}": round(new / result["trajectories_per_s"], 2)
        for name, result in results.items()
        if name != "continuous"
    }


async def today(args, sandbox: SandboxConfig) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(tmp, suite_corpus(rows=60, seed=0), TinyModelConfig())
        bundle = load_model_bundle(model_dir, device="cpu", dtype="float32")
        async with SandboxPool(sandbox) as pool:
            observation = format_observation(await pool.run_once(make_item(0).images[0], CODE)).text
            imprint_conversation(
                bundle, to_model_messages(MESSAGES), make_item(0).images, [(TURN_1, observation), (TURN_2, None)]
            )
            config = RolloutConfig(
                max_turns=args.turns, max_new_tokens=args.max_new_tokens, temperature=0.7,
                samples_per_prompt=args.samples, seed=0,
            )
            items = [make_item(i) for i in range(args.prompts)]
            runs: dict[str, list] = {"continuous": [], "lockstep": []}
            for _ in range(args.repeats):  # interleaved, so a burst of load elsewhere hits both loops
                for name, measured in runs.items():
                    config_of_loop = config.model_copy(update={"lockstep": name == "lockstep"})
                    measured.append(await timed(HFEngine(bundle), pool, config_of_loop, items, bundle))
            results = {name: median_run(measured) for name, measured in runs.items()}
    workload = {"prompts": args.prompts, "samples": args.samples, "max_turns": args.turns, "engine": "hf, tiny model",
                "repeats": args.repeats}
    return {"workload": workload, **results, "speedup": speedups(results)}


async def slow_tools(args, sandbox: SandboxConfig) -> dict:
    code_turns = args.slow_turns - 1
    items = [make_item(i, "white") for i in range(args.slow_prompts)]
    keys = [(item.item_id, s, t) for item in items for s in range(args.samples) for t in range(code_turns)]
    config = RolloutConfig(max_turns=args.slow_turns, max_new_tokens=1024, samples_per_prompt=args.samples)
    loops = (("continuous", False, SandboxPool), ("lockstep", True, SandboxPool),
             ("lockstep_fixed_pool", True, FixedSlotsPool))
    results = {}
    for name, lockstep, pool_class in loops:
        engine = ScriptedEngine(keys, code_turns, args.code_tokens, args.step_ms / 1000, args.call_ms / 1000)
        async with pool_class(sandbox) as pool:
            results[name] = figures(*await timed(engine, pool, config.model_copy(update={"lockstep": lockstep}),
                                                 items))
    workload = {
        "prompts": args.slow_prompts, "samples": args.samples, "max_turns": args.slow_turns,
        "slow_calls": f"1 in {SLOW_SHARE} tool calls sleeps {SLOW_S:g} s",
        "engine": f"scripted: {args.call_ms:g} ms per call + {args.step_ms:g} ms per token of its longest turn, "
        f"code turns {args.code_tokens} tokens",
    }
    return {"workload": workload, **results, "speedup": speedups(results)}


async def measure(args) -> dict:
    sandbox = SandboxConfig(workers=args.workers)
    report: dict = {"cpus": os.cpu_count(), "sandbox_workers": args.workers}
    report["slow_tools"] = await slow_tools(args, sandbox)
    if not args.skip_today:
        report["today"] = await today(args, sandbox)
    report["target"] = "continuous >= 2x lockstep on slow_tools; no slower on today"
    report["load_average"] = os.getloadavg()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64, help="today: prompts")
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt (both workloads)")
    parser.add_argument("--turns", type=int, default=4, help="today: turns at most")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="today: tokens per turn")
    parser.add_argument("--slow-prompts", type=int, default=32, help="slow_tools: prompts")
    parser.add_argument("--slow-turns", type=int, default=6, help="slow_tools: turns (all but the last write code)")
    parser.add_argument("--code-tokens", type=int, default=256, help="slow_tools: tokens one code turn stands for")
    parser.add_argument("--step-ms", type=float, default=2.0, help="slow_tools: engine time per decode step")
    parser.add_argument("--call-ms", type=float, default=50.0, help="slow_tools: engine time per call")
    parser.add_argument("--workers", type=int, default=2, help="sandbox templates (the config's default)")
    parser.add_argument("--repeats", type=int, default=3, help="today: runs of each loop, interleaved (median kept)")
    parser.add_argument("--skip-today", action="store_true", help="run the slow_tools workload only")
    print(json.dumps(asyncio.run(measure(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
