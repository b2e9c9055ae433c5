"""What an SFT run and a GRPO run share before and around their loops: the run directory, its
checkpoints and the one to resume from, the settings a resume must keep, the model to start from,
and the metrics log.

Both trainers resume the same way: the latest complete checkpoint holds the whole model (or its
LoRA adapters, applied to the base model again), the optimizer, scheduler, RNG and data position.
A resume continues the run it finds, so it refuses settings other than the run's own (recorded
beside the checkpoints at its first start) unless forced, and it drops the metrics rows of the
steps it is about to redo, so each step is logged once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from codedance_core.scratch import sweep_stale
from codedance_core.train.checkpoint import CACHE_PREFIX, MODEL_DIR, CheckpointManager
from codedance_core.train.distributed import DistContext
from codedance_core.train.model_setup import prepare_for_training
from codedance_core.train.sharded import load_sharded, weight_dtype

MetricsCallback = Callable[[dict[str, float], int], None]
METRICS_FILE = "metrics.jsonl"
FINAL_MODEL_DIR = "model"
SETTINGS_FILE = "settings.json"  # beside the checkpoints: it travels with them (local or s3://)

# Settings a resume may change (a dotted path covers what is under it). Everything else shapes the
# math of the run -- learning rate, batch, workers (global batch, data shards, ZeRO shard layout),
# GPUs (device and dtype), seed, rollout and reward settings -- and a change there needs `force`.
RESUMABLE_CHANGES = frozenset({
    # how long the run is: extending (or shortening) a run is what a resume is for
    "max_steps", "epochs",
    # bookkeeping
    "checkpoint_every", "keep_checkpoints", "log_every", "trajectories_every", "trajectories_per_save",
    # resources and memory, not math: what one lowers to resume after an out-of-memory error
    "cpus_per_worker", "gpu_memory_gb", "gradient_checkpointing", "offload_optimizer", "logprob_chunk_tokens",
    "micro_batch_size", "max_tokens_per_micro_batch", "rollout_gpu_share",
    "rollout.early_sessions", "rollout.batch_wait_ms",
    # where the judge is served and how hard it is asked (its model is compared: it grades)
    "rewards.judge",
})
_COMPARED_ANYWAY = frozenset({"rewards.judge.model"})
_log = logging.getLogger(__name__)


class SettingsMismatchError(ValueError):
    """A run directory's checkpoints were written with other settings, and `force` was not given."""


def run_settings(config: BaseModel, **sections: BaseModel) -> dict[str, Any]:
    """The settings a resume of this run must keep: the trainer config's fields with `sections`
    (replacing a field of the same name), as dotted paths, less `RESUMABLE_CHANGES`."""
    tree = {**config.model_dump(mode="json"), **{name: s.model_dump(mode="json") for name, s in sections.items()}}
    return {path: value for path, value in _flatten(tree).items() if _compared(path)}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _compared(path: str) -> bool:
    return path in _COMPARED_ANYWAY or not any(
        path == changeable or path.startswith(changeable + ".") for changeable in RESUMABLE_CHANGES
    )


def settings_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """`name old -> new` for each setting both have and that differs, in the current settings' order.
    A setting only one side has is a field the code added or removed since, not a change of the run's."""
    return [
        f"{name} {json.dumps(recorded[name])} -> {json.dumps(value)}"
        for name, value in current.items()
        if name in recorded and recorded[name] != value
    ]


@dataclass
class RunStart:
    """A run directory and where in it the run starts: from scratch, or from `resume_dir`."""

    run_dir: Path
    checkpoints: CheckpointManager
    resume_name: str | None
    resume_dir: Path | None

    @classmethod
    def open(
        cls,
        run_dir: str | Path,
        checkpoint_uri: str | None,
        keep: int,
        settings: Mapping[str, Any] | None = None,
        force: bool = False,
        dist: DistContext | None = None,
    ) -> RunStart:
        """Create `run_dir` if needed and find its latest complete checkpoint (local or s3://).

        `settings` (`run_settings`) are recorded at the run's first start; resuming with others
        raises `SettingsMismatchError` naming them, unless `force` (then they become the run's). The
        metrics rows after the checkpoint's step are dropped: the run logs those steps again. Scratch
        downloads of killed runs are removed first."""
        dist = dist or DistContext()
        sweep_stale(CACHE_PREFIX, tempfile.gettempdir())
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        checkpoints = CheckpointManager(checkpoint_uri or run_dir / "checkpoints", keep=keep)
        name = checkpoints.latest()
        step = checkpoints.step_of(name) if name else 0
        if settings is not None:
            _keep_settings(checkpoints, dict(settings), step if name else None, force, dist)
        if dist.is_main:
            trim_metrics(run_dir, step)
        return cls(run_dir, checkpoints, name, checkpoints.local_path(name) if name else None)

    def close(self) -> None:
        """Remove the local copy of a remote checkpoint (resume has read it by the time the run ends)."""
        shutil.rmtree(self.checkpoints.cache_dir, ignore_errors=True)

    def load_bundle(self, config: Any, model_dir: str | Path, dist: DistContext, model_in_checkpoint: bool = True) -> Any:
        """The model bundle to train, ready for training (LoRA, frozen parts) per `config`.

        Its weights come from the checkpoint when it holds the whole model, else from `model_dir`
        (with the checkpoint's adapters under LoRA). `model_in_checkpoint=False` says the weights
        are restored elsewhere (DeepSpeed's own state), so the base model is loaded. Float32, or
        bf16 under DeepSpeed on a GPU; under ZeRO-3 each rank loads only its shards (`load_sharded`).
        """
        from codedance_core.models import load_model_bundle

        lora = config.lora.enabled
        whole_model = self.resume_dir is not None and model_in_checkpoint and not lora
        bundle = load_sharded(
            config,
            dist,
            lambda: load_model_bundle(
                self.resume_dir / MODEL_DIR if whole_model and self.resume_dir is not None else model_dir,
                device=str(dist.device),
                dtype=weight_dtype(config, dist.device),
                min_pixels=config.image_min_pixels,
                max_pixels=config.image_max_pixels,
            ),
        )
        adapter_dir = self.resume_dir / MODEL_DIR if self.resume_dir is not None and lora else None
        bundle.model = prepare_for_training(bundle.model, config, adapter_dir)
        return bundle

    def needs_checkpoint_at(self, step: int) -> bool:
        """True unless the latest checkpoint is already at `step` (the loop's last save)."""
        latest = self.checkpoints.latest()
        return not latest or self.checkpoints.step_of(latest) != step


def append_metrics(
    run_dir: Path, row: dict[str, Any], callback: MetricsCallback | None, dist: DistContext | None = None,
    rank_metrics: dict[str, float] | None = None,
) -> None:
    """One step's row to `run_dir`/metrics.jsonl and to the callback (MLflow), keyed by its step.

    Call it on every rank: the main rank writes the row (the whole batch's figures); under several
    workers each rank also hands the callback its own figures as `rank<N>/<name>`, so a slow or
    diverging worker shows up in MLflow."""
    dist = dist or DistContext()
    metrics: dict[str, float] = {}
    if dist.is_main:
        with open(run_dir / METRICS_FILE, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        metrics.update({key: float(value) for key, value in row.items() if key != "step"})
    if dist.distributed:
        metrics.update({f"rank{dist.rank}/{key}": float(value) for key, value in (rank_metrics or {}).items()})
    if callback is not None and metrics:
        callback(metrics, row["step"])


def trim_metrics(run_dir: Path, step: int) -> int:
    """Drop the rows of `run_dir`/metrics.jsonl after `step` (and a line a kill cut short), atomically,
    before a run that starts at `step` logs the later steps again; how many lines were dropped."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return 0
    text = path.read_text()
    lines = text.splitlines()
    kept = [line for line in lines if (logged := _logged_step(line)) is not None and logged <= step]
    if len(kept) == len(lines) and (not text or text.endswith("\n")):
        return 0
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(temp, "w") as handle:
        handle.write("".join(line + "\n" for line in kept))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return len(lines) - len(kept)


def _logged_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _keep_settings(
    checkpoints: CheckpointManager, settings: dict[str, Any], step: int | None, force: bool, dist: DistContext
) -> None:
    """Record the run's settings at its first start; on resume (`step`), refuse others unless `force`."""
    recorded = checkpoints.store.read_json(SETTINGS_FILE) if checkpoints.store.exists(SETTINGS_FILE) else None
    current = json.loads(json.dumps(settings))  # as they read back: tuples are lists
    changes = settings_changes(recorded, current) if step is not None and recorded is not None else []
    if changes and not force:
        raise SettingsMismatchError(
            f"refusing to resume checkpoint step {step} in {checkpoints.root}: settings differ: {', '.join(changes)}; "
            "use --force (force=True) to continue with the new settings, or a new output folder"
        )
    if changes:
        _log.warning("resuming checkpoint step %s in %s with new settings: %s", step, checkpoints.root, ", ".join(changes))
    if dist.is_main and recorded != current and (step is None or force or recorded is None):
        checkpoints.store.write_json(SETTINGS_FILE, current)
