"""What an SFT run and a GRPO run share before and around their loops: the run directory, its
checkpoints and the one to resume from, the model to start from, and the metrics log.

Both trainers resume the same way: the latest complete checkpoint holds the whole model (or its
LoRA adapters, applied to the base model again), the optimizer, scheduler, RNG and data position.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedance_core.train.checkpoint import MODEL_DIR, CheckpointManager
from codedance_core.train.distributed import DistContext
from codedance_core.train.model_setup import prepare_for_training
from codedance_core.train.sharded import load_sharded, weight_dtype

MetricsCallback = Callable[[dict[str, float], int], None]
METRICS_FILE = "metrics.jsonl"
FINAL_MODEL_DIR = "model"


@dataclass
class RunStart:
    """A run directory and where in it the run starts: from scratch, or from `resume_dir`."""

    run_dir: Path
    checkpoints: CheckpointManager
    resume_name: str | None
    resume_dir: Path | None

    @classmethod
    def open(cls, run_dir: str | Path, checkpoint_uri: str | None, keep: int) -> RunStart:
        """Create `run_dir` if needed and find its latest complete checkpoint (local or s3://)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        checkpoints = CheckpointManager(checkpoint_uri or run_dir / "checkpoints", keep=keep)
        name = checkpoints.latest()
        return cls(run_dir, checkpoints, name, checkpoints.local_path(name) if name else None)

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
