"""Benchmark of the sandbox against its performance targets; prints one JSON object.

    .venv/bin/python benchmarks/sandbox.py [--runs 200] [--naive-runs 10] [--workers 2]

Compares, in one run: (a) the sandbox with isolation on, warm sessions; (b) a fresh `python -c`
per call with the same imports; (c) in-process exec (the floor). Also what a new session costs
(open_session plus its first trivial execute, since a session's process starts at its first
execute; a warm execute of the same snippet beside it) and throughput with the configured
number of workers. See codedance_core/sandbox/bench.py.
"""

from __future__ import annotations

import argparse
import json

from codedance_core.config.sandbox import SandboxConfig
from codedance_core.sandbox.bench import run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="timed executions for (a) and (c)")
    parser.add_argument("--naive-runs", type=int, default=10, help="timed interpreter starts for (b)")
    parser.add_argument("--sessions", type=int, default=50, help="new sessions timed (open + first execute)")
    parser.add_argument("--throughput-runs", type=int, default=800, help="executions in the throughput test")
    parser.add_argument("--workers", type=int, default=2, help="sandbox workers")
    parser.add_argument("--isolation", choices=["bwrap", "none"], default="bwrap")
    args = parser.parse_args()
    config = SandboxConfig(workers=args.workers, isolation=args.isolation)
    report = run_benchmark(config, args.runs, args.naive_runs, args.sessions, args.throughput_runs)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
