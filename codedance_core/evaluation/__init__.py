"""Evaluation: the benchmark registry and loaders, the runner, stats with intervals, the viewer.

    from codedance_core.evaluation import EvalRunner, BENCHMARKS
    outputs = asyncio.run(EvalRunner(config, engine, "my-model").run())

`registry` names what each benchmark's file must look like; `runner` rolls out and scores;
`results` owns the resumable jsonl; `stats`, `viewer` and `plots` turn rows into reports.
"""

from codedance_core.evaluation.registry import BENCHMARKS, Benchmark, LoadFailure, get_benchmark, load_items
from codedance_core.evaluation.runner import EvalOutputs, EvalRunner
from codedance_core.evaluation.stats import bootstrap_interval, run_stats, wilson_interval

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "EvalOutputs",
    "EvalRunner",
    "LoadFailure",
    "bootstrap_interval",
    "get_benchmark",
    "load_items",
    "run_stats",
    "wilson_interval",
]
