"""How much scoring costs a GRPO step: rule throughput, and the judge cold and cached.

One step of the paper's RL scores 256 prompts x 8 rollouts = 2048 trajectories. This script
scores such a batch by rules (a mix of counts, choices, numbers, words and formulas), then
sends free-form answers to a local OpenAI-compatible judge that answers after a fixed latency,
first cold (every answer a request) and then again (every answer a cache hit). Prints JSON.

    .venv/bin/python benchmarks/rewards.py [--trajectories 2048] [--judge-items 256] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from codedance_core.config.rewards import JudgeConfig, RewardConfig
from codedance_core.rewards.judge import JudgeRequest, LLMJudge
from codedance_core.rewards.score import TrajectoryInput, batch_rewards, score_trajectories

MIX = [  # (answer, gold, data_source)
    ("3", "13", "suite_count"),
    ("1,000", "1000", "suite_count"),
    ("(B)", "B", "vstar"),
    ("Dark grey.", "gray", "suite_search"),
    ("Yes.", "yes", "suite_search"),
    ("42.1", "44", "chart"),
    ("\\frac{\\sqrt{3}}{2}", "sqrt(3)/2", "mathvista"),
    ("x^2 + 2x + 1", "(x+1)^2", "suite_math"),
]


def rule_batch(n: int) -> list[TrajectoryInput]:
    items = []
    for index in range(n):
        answer, gold, source = MIX[index % len(MIX)]
        text = f"<think>step {index}</think><code>...</code><think>so</think><answer>{answer}</answer>"
        items.append(TrajectoryInput(text, gold, source, ["ok", "error", None][: 1 + index % 3]))
    return items


def start_slow_judge(latency_s: float) -> tuple[ThreadingHTTPServer, str]:
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Judgement: 1"}}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(latency_s)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def timed(function) -> tuple[object, float]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=2048)
    parser.add_argument("--judge-items", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    items = rule_batch(args.trajectories)
    asyncio.run(score_trajectories(items[: len(MIX)]))  # warm imports (sympy, math-verify)
    scores, rule_s = timed(lambda: asyncio.run(score_trajectories(items)))
    _, reward_s = timed(lambda: batch_rewards(scores, [i // 8 for i in range(len(scores))]))

    server, base_url = start_slow_judge(args.latency_ms / 1000)
    with tempfile.TemporaryDirectory() as workdir:
        config = JudgeConfig(
            base_urls=[base_url],
            model="bench",
            concurrency=args.concurrency,
            cache_path=str(Path(workdir) / "cache.sqlite"),
        )
        requests = [JudgeRequest("q", "on the sofa", f"answer {i}") for i in range(args.judge_items)]
        cold, cold_s = timed(lambda: LLMJudge(config).judge_many_sync(requests))
        warm, warm_s = timed(lambda: LLMJudge(config).judge_many_sync(requests))
    server.shutdown()

    print(
        json.dumps(
            {
                "rule_scoring": {
                    "trajectories": len(items),
                    "seconds": round(rule_s, 3),
                    "per_second": round(len(items) / rule_s, 1),
                },
                "batch_rewards_seconds": round(reward_s, 4),
                "judge": {
                    "items": args.judge_items,
                    "latency_ms": args.latency_ms,
                    "concurrency": args.concurrency,
                    "cold_seconds": round(cold_s, 3),
                    "cold_per_second": round(args.judge_items / cold_s, 1),
                    "cached_seconds": round(warm_s, 3),
                    "cached_per_second": round(args.judge_items / warm_s, 1),
                    "all_ok": all(v.ok for v in cold) and all(v.cached for v in warm),
                    "ideal_cold_seconds": round(
                        args.judge_items / args.concurrency * args.latency_ms / 1000, 3
                    ),
                },
                "config_digest": RewardConfig().digest()[:16],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
