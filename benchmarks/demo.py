"""`make demo`'s lifecycle, cold and with nothing changed, at this checkout and at a baseline commit.

Runs `python -m flows.lifecycle --profile tiny` twice in each tree (a fresh `.codedance/` and
PREFECT_HOME, then again with everything cached), the baseline first, one run after the other so
both see the same machine. Both trees are git worktrees (of `--baseline` and of HEAD: commit what
you measure), run with this environment's Python; this checkout's own `.codedance/` is not touched. Prints one JSON object: seconds per tree and phase, and whether the
cached run was all cache hits.

    python benchmarks/demo.py --baseline 3a28c16

Target: neither phase slower than at the baseline (the stage layer adds a cache lookup per stage,
under a lock, and derives each stage's code version from its import graph).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lifecycle_seconds(tree: Path, home: Path) -> dict[str, float | bool]:
    """Seconds of a cold run and of a rerun with nothing changed, in `tree`."""
    shutil.rmtree(tree / ".codedance", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "PREFECT_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "RAY_AUTH_MODE": "disabled", "DS_ACCELERATOR": "cpu"}
    figures: dict[str, float | bool] = {}
    for phase in ("cold", "cached"):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "flows.lifecycle", "--profile", "tiny"], cwd=tree, env=env,
                              capture_output=True, text=True, check=False)
        figures[f"{phase}_s"] = round(time.perf_counter() - started, 1)
        if done.returncode != 0:
            raise SystemExit(f"the lifecycle failed in {tree} ({phase}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        if phase == "cached":
            finished = [line for line in (done.stdout + done.stderr).splitlines()
                        if "Task run" in line and "Finished in state" in line]
            figures["all_cache_hits"] = bool(finished) and all("Cached" in line for line in finished)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git commit to compare with (e.g. the one before a change)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="codedance-demo-bench-") as scratch:
        trees = {name: Path(scratch) / name for name in ("baseline", "head")}
        figures = {}
        try:
            for name, ref in (("baseline", args.baseline), ("head", "HEAD")):
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(trees[name]), ref],
                               check=True, capture_output=True)
                figures[name] = lifecycle_seconds(trees[name], Path(scratch) / f"prefect-{name}")
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                               check=False, capture_output=True)
        baseline, head = figures["baseline"], figures["head"]
    print(json.dumps({"benchmark": "demo", "baseline": {"commit": args.baseline, **baseline},
                      "head": {"commit": _head(), **head}}))


def _head() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()


if __name__ == "__main__":
    main()
