"""The prepared GPU check runs every phase at toy size on the CPU, so it is not first tried on a lent GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


@pytest.mark.slow  # about 30 s: builds a model, then SFT and a GRPO step under ZeRO-3 over gloo
def test_every_phase_runs_at_toy_size_and_the_chunked_logprobs_match(tmp_path):
    env = {**os.environ, "DS_ACCELERATOR": "cpu"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "tiny", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")],
        check=False, capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["logprobs"]["max_abs_diff"] < 1e-5
    assert report["sft_zero3"]["steps"] == 4 and report["sft_zero3"]["tokens_per_s"] > 0
    assert report["grpo_zero3"]["steps"] == 1 and report["grpo_zero3"]["rollout_logprob_abs_diff"] < 1e-4
    assert report["generation"]["generated_tokens"] > 0
