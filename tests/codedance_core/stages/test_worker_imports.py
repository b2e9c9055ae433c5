"""Worker code imports codedance_core only: every stage's entry point runs where Prefect is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from codedance_core.config import load_profile
from codedance_core.stages.data import TEXT_ONLY_PLAN
from codedance_core.stages.models import base_model_plan
from codedance_core.stages.plan import lifecycle_plan
from codedance_core.stages.sources import SOURCES_PLAN

CHAIN = Path(__file__).with_name("worker_chain.py")


def test_every_entry_point_runs_in_an_interpreter_without_the_orchestrator(tmp_path: Path) -> None:
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run([sys.executable, str(CHAIN), str(tmp_path / "store")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["orchestrator_modules"] == []
    planned = {plan.entry_point for _, plan in lifecycle_plan(load_profile("tiny")) if plan.kind != "in-process"}
    planned |= {TEXT_ONLY_PLAN.entry_point, base_model_plan(None).entry_point, SOURCES_PLAN.entry_point}
    assert set(report["ran"]) == planned
