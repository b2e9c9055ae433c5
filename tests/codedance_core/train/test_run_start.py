"""A run's start: a resume logs each step once, keeps the run's settings unless forced, and leaves no
scratch folder behind (nor one of a killed run)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from codedance_core.config.rewards import JudgeConfig, RewardConfig
from codedance_core.config.train import GRPOConfig, LoRAConfig, SFTConfig
from codedance_core.scratch import owner_tag
from codedance_core.train.checkpoint import CACHE_PREFIX, CheckpointManager
from codedance_core.train.run_start import (
    METRICS_FILE,
    RunStart,
    SettingsMismatchError,
    run_settings,
    trim_metrics,
)
from codedance_core.train.sft import train_sft

CONFIG = SFTConfig(max_steps=4, batch_size=4, checkpoint_every=2, learning_rate=5e-3, warmup_ratio=0.1)


def _logged_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / METRICS_FILE).read_text().splitlines()]


def _as_if_killed_after_step_4_before_its_checkpoint(run_dir: Path) -> None:
    shutil.rmtree(run_dir / "checkpoints" / "step-00000004")
    shutil.rmtree(run_dir / "model")


def test_a_resumed_run_logs_each_step_once(tiny_model_dir, sft_rows, tmp_path):
    train_sft(CONFIG, sft_rows, tiny_model_dir, tmp_path, progress=False)
    _as_if_killed_after_step_4_before_its_checkpoint(tmp_path)
    assert _logged_steps(tmp_path) == [1, 2, 3, 4]

    seen: list[int] = []
    result = train_sft(
        CONFIG,
        sft_rows,
        tiny_model_dir,
        tmp_path,
        metrics_callback=lambda m, s: seen.append(s),
        progress=False,
    )
    assert result.resumed_from == "step-00000002" and result.steps == 4
    assert _logged_steps(tmp_path) == [1, 2, 3, 4]  # rows 3 and 4 of the killed run were dropped
    assert seen == [3, 4]  # the callback (MLflow) hears each redone step once


def test_metrics_after_the_resumed_step_and_a_line_cut_short_are_dropped(tmp_path):
    rows = [json.dumps({"step": step, "loss": 1.0 / step}) for step in range(1, 6)]
    (tmp_path / METRICS_FILE).write_text("\n".join(rows) + '\n{"step": 6, "lo')
    assert trim_metrics(tmp_path, 3) == 3
    assert _logged_steps(tmp_path) == [1, 2, 3]
    assert trim_metrics(tmp_path, 3) == 0
    assert trim_metrics(tmp_path, 0) == 3  # a run with no checkpoint starts over
    assert (tmp_path / METRICS_FILE).read_text() == ""
    assert [p.name for p in tmp_path.iterdir()] == [METRICS_FILE]  # no temp file left


def test_resuming_with_other_settings_refuses_and_names_them(tiny_model_dir, sft_rows, tmp_path):
    train_sft(CONFIG.model_copy(update={"max_steps": 2}), sft_rows, tiny_model_dir, tmp_path, progress=False)
    changed = CONFIG.model_copy(update={"learning_rate": 1e-2, "batch_size": 2, "lora": LoRAConfig(rank=8)})
    with pytest.raises(SettingsMismatchError) as refused:
        train_sft(changed, sft_rows, tiny_model_dir, tmp_path, progress=False)
    assert str(refused.value) == (
        f"refusing to resume checkpoint step 2 in {tmp_path / 'checkpoints'}: settings differ: "
        "lora.rank 16 -> 8, learning_rate 0.005 -> 0.01, batch_size 4 -> 2; "
        "use --force (force=True) to continue with the new settings, or a new output folder"
    )
    assert _logged_steps(tmp_path) == [1, 2]

    # More steps and other bookkeeping are what a resume is for.
    longer = CONFIG.model_copy(update={"max_steps": 3, "log_every": 3, "keep_checkpoints": 3})
    assert train_sft(longer, sft_rows, tiny_model_dir, tmp_path, progress=False).steps == 3

    forced = train_sft(changed, sft_rows, tiny_model_dir, tmp_path, progress=False, force=True)
    assert forced.resumed_from == "step-00000003" and forced.steps == 4
    # The forced settings are the run's now: resuming with them again is no change.
    assert (
        train_sft(changed, sft_rows, tiny_model_dir, tmp_path, progress=False).resumed_from == "step-00000004"
    )


def test_a_fresh_start_takes_any_settings_and_records_them(tmp_path):
    RunStart.open(tmp_path, None, 2, run_settings(CONFIG))
    RunStart.open(tmp_path, None, 2, run_settings(CONFIG.model_copy(update={"seed": 7})))  # nothing to resume
    recorded = json.loads((tmp_path / "checkpoints" / "settings.json").read_text())
    assert recorded["seed"] == 7


def test_settings_leave_out_what_a_resume_may_change_and_keep_what_shapes_the_math():
    grpo = GRPOConfig(max_steps=5, prompts_per_step=4, micro_batch_size=2)
    rewards = RewardConfig(judge=JudgeConfig(base_urls=["http://judge:8000/v1"], model="judge-7b"))
    settings = run_settings(grpo, rollout=grpo.rollout_settings(), rewards=rewards)
    assert settings["learning_rate"] == 1e-6 and settings["num_workers"] == 1 and settings["seed"] == 0
    assert settings["rollout.max_turns"] == 6 and settings["rewards.gamma"] == 4.0
    assert settings["rewards.judge.model"] == "judge-7b" and settings["lora.target_modules"][0] == "q_proj"
    for resumable in (
        "max_steps",
        "epochs",
        "micro_batch_size",
        "checkpoint_every",
        "cpus_per_worker",
        "rollout.batch_wait_ms",
        "rewards.judge.base_urls",
        "rewards.judge.max_retries",
    ):
        assert resumable not in settings


def test_no_checkpoint_cache_folder_is_made_for_local_checkpoints(tmp_path):
    manager = CheckpointManager(tmp_path / "checkpoints", keep=2)
    assert manager.cache_dir.name.startswith(CACHE_PREFIX + owner_tag())
    assert not manager.cache_dir.exists()


def test_a_download_of_an_s3_checkpoint_is_removed_when_the_run_ends(
    tiny_model_dir, sft_rows, tmp_path, s3_bucket
):
    checkpoints = f"s3://{s3_bucket}/run/checkpoints"
    config = CONFIG.model_copy(update={"max_steps": 2})
    train_sft(config, sft_rows, tiny_model_dir, tmp_path, checkpoint_uri=checkpoints, progress=False)
    resumed = train_sft(
        config.model_copy(update={"max_steps": 3}),
        sft_rows,
        tiny_model_dir,
        tmp_path,
        checkpoint_uri=checkpoints,
        progress=False,
    )
    assert resumed.resumed_from == "step-00000002"
    assert not list(Path(tempfile.gettempdir()).glob(f"{CACHE_PREFIX}{owner_tag()}*"))


OWN_A_CACHE = """
import sys, time
from codedance_core.train.checkpoint import CACHE_PREFIX
from codedance_core.scratch import scratch_path
folder = scratch_path(CACHE_PREFIX)
(folder / "step-00000002").mkdir(parents=True)  # as a download of a remote checkpoint would
print(folder, flush=True)
time.sleep(600)
"""


def _owning_a_cache() -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", OWN_A_CACHE], stdout=subprocess.PIPE, text=True)
    return process, Path(process.stdout.readline().strip())


def test_the_next_start_removes_the_cache_of_a_killed_run_and_not_of_a_live_one(tmp_path):
    killed, killed_cache = _owning_a_cache()
    live, live_cache = _owning_a_cache()
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert killed_cache.exists()
        RunStart.open(tmp_path, None, 2)
        assert not killed_cache.exists()
        assert live_cache.exists()
    finally:
        live.kill()
        live.wait()
        shutil.rmtree(live_cache, ignore_errors=True)
