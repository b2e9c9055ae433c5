"""Training checkpoints that are complete or absent, a `latest` pointer, and exact resume.

A checkpoint `step-00000012/` holds the model (`model/`, written by `save_pretrained`), the
trainer state (`trainer_state.pt`: optimizer, scheduler, RNG states of python/numpy/torch, data
position, step) and `checkpoint.json`, the list of its files with each one's size and digest,
written last. A run killed with
SIGKILL at any instant leaves either a complete checkpoint or one that resume ignores:
- local root, one writer: everything is written to a hidden temp directory beside the
  checkpoints, then renamed into place (a directory rename is atomic); then `latest` is replaced
  atomically. Stale temp directories of killed runs are removed on the next start.
- S3 root (or several writers, e.g. DeepSpeed ranks each holding shards): every rank writes its
  files into a local staging directory and uploads them through the artifact store (each file
  atomic, with its manifest); after a barrier the main rank writes `checkpoint.json`, then
  `latest`. A checkpoint without `checkpoint.json` does not exist, and a step written again loses
  its `checkpoint.json` before any of its files is replaced.
`latest` names the newest checkpoint for people and tools. Resume takes the newest complete
checkpoint whatever the pointer says: a kill between a checkpoint's rename and the pointer's
update leaves the pointer one checkpoint behind, and that checkpoint is still the one to resume.
A checkpoint whose files no longer match `checkpoint.json` (truncated or lost since: a full disk,
a partial copy) is reported with a warning and the one before it is used.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codedance_core.scratch import scratch_path
from codedance_core.storage import (
    ArtifactStore,
    CorruptArtifactError,
    directory_index,
    is_remote,
    normalize_uri,
    sha256_bytes,
    sha256_file,
)
from codedance_core.train.distributed import DistContext

MANIFEST = "checkpoint.json"
LATEST = "latest"
TRAINER_STATE = "trainer_state.pt"
MODEL_DIR = "model"
CACHE_PREFIX = "codedance-ckpt-cache-"
_NAME = re.compile(r"^step-(\d{8})$")
_log = logging.getLogger(__name__)


@dataclass
class DataPosition:
    """Where training stands: optimizer steps done and micro-batches consumed in the current epoch."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens_seen: int = 0


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def capture_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_trainer_state(
    directory: Path, optimizer: Any, scheduler: Any, position: DataPosition, extra: dict | None = None
) -> None:
    """Optimizer, scheduler, RNG states and data position into `directory/trainer_state.pt`."""
    torch.save(
        {
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": capture_rng_state(),
            "position": asdict(position),
            "extra": extra or {},
        },
        directory / TRAINER_STATE,
    )


def read_trainer_state(directory: Path, optimizer: Any, scheduler: Any) -> DataPosition:
    """Load optimizer and scheduler in place, restore the RNGs; the saved data position."""
    state = torch.load(directory / TRAINER_STATE, map_location="cpu", weights_only=False)
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    restore_rng_state(state["rng"])
    return DataPosition(**state["position"])


class CheckpointManager:
    """Checkpoints of one run under a local folder or an s3:// prefix."""

    def __init__(self, root: str | Path, keep: int = 2, cache_dir: str | Path | None = None):
        self.root = normalize_uri(root)
        self.remote = is_remote(self.root)
        self.keep = keep
        self.store = ArtifactStore(self.root)
        # Made only when a remote checkpoint is downloaded, named for this process so that the next
        # run removes it if this one is killed (codedance_core/scratch.py).
        self.cache_dir = Path(cache_dir) if cache_dir is not None else scratch_path(CACHE_PREFIX)
        self._intact: dict[str, bool] = {}  # checkpoints already checked (or written) by this manager
        if not self.remote:
            self._remove_stale_temp_dirs()

    # -- writing ------------------------------------------------------------------------------
    def save(self, step: int, write: Callable[[Path], None], dist: DistContext | None = None) -> str:
        """Write checkpoint `step`: `write(directory)` fills a local directory on every rank."""
        dist = dist or DistContext()
        name = checkpoint_name(step)
        if not self.remote and not dist.distributed:
            self._save_local(name, step, write)
        else:
            self._save_through_store(name, step, write, dist)
        if dist.is_main:
            self._prune()
        dist.barrier()
        return name

    def _save_local(self, name: str, step: int, write: Callable[[Path], None]) -> None:
        root = Path(self.store.root_path)
        temp = root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        temp.mkdir(parents=True)
        write(temp)
        index = directory_index(temp)
        (temp / MANIFEST).write_text(json.dumps({"step": step, "files": sorted(index), "index": index}))
        _fsync_tree(temp)
        final = root / name
        if final.exists():  # a checkpoint of the same step from a run killed before `latest` moved
            shutil.rmtree(final)
        os.rename(temp, final)
        self._intact[name] = True
        _write_atomic(root / LATEST, name.encode())

    def _save_through_store(
        self, name: str, step: int, write: Callable[[Path], None], dist: DistContext
    ) -> None:
        if dist.is_main:  # the step stops counting before any of its files changes
            self.store.delete(f"{name}/{MANIFEST}")
        dist.barrier()
        staging = Path(tempfile.mkdtemp(prefix="codedance-ckpt-stage-"))
        index: dict[str, dict[str, Any]] = {}
        try:
            write(staging)
            for relative in sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()):
                with self.store.stage(f"{name}/{relative}") as staged:
                    shutil.copyfile(staging / relative, staged.path)
                assert staged.ref is not None
                index[relative] = {"digest": staged.ref.digest, "size": staged.ref.size}
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        every_file = {f: entry for rank_index in dist.gather_objects(index) for f, entry in rank_index.items()}
        dist.barrier()
        if dist.is_main:  # last, once every rank's files are up: the step is complete
            self.store.write_json(f"{name}/{MANIFEST}", {"step": step, "files": sorted(every_file), "index": every_file})
            self._intact[name] = True
            self.store.write_bytes(LATEST, name.encode())

    # -- reading ------------------------------------------------------------------------------
    def complete(self) -> list[str]:
        """Names of the complete checkpoints, oldest first."""
        if self.remote:
            names = {a.split("/")[0] for a in self.store.list() if a.endswith("/" + MANIFEST)}
        else:
            root = Path(self.store.root_path)
            names = {p.parent.name for p in root.glob(f"*/{MANIFEST}")}
        return sorted(name for name in names if _NAME.match(name))

    def latest(self) -> str | None:
        """The checkpoint to resume from: the newest complete one whose files match its manifest."""
        for name in reversed(self.complete()):
            if name not in self._intact:
                try:
                    problems = self._problems(name)
                except (OSError, ValueError, KeyError) as exc:  # an unreadable checkpoint.json
                    problems = [f"{MANIFEST} cannot be read ({type(exc).__name__}: {exc})"]
                if problems:
                    _log.warning("checkpoint %s in %s is damaged (%s): resuming from the one before it",
                                 name, self.root, "; ".join(problems[:3]))
                self._intact[name] = not problems
            if self._intact[name]:
                return name
        return None

    def _problems(self, name: str) -> list[str]:
        """How checkpoint `name`'s files differ from its manifest: sizes and digests of local files
        (read once per manager), the stored manifests of remote ones (their bytes are checked as they
        download). A manifest written before digests were recorded is checked for the files' presence."""
        manifest = self._manifest(name)
        index: dict[str, dict[str, Any]] = manifest.get("index") or {f: {} for f in manifest["files"]}
        problems = []
        for relative, entry in sorted(index.items()):
            if self.remote:
                ref = self.store.ref(f"{name}/{relative}")
                found = None if ref is None else {"digest": ref.digest, "size": ref.size}
            else:
                path = Path(self.store.root_path) / name / relative
                found = {"digest": sha256_file(path), "size": path.stat().st_size} if path.is_file() else None
            if found is None:
                problems.append(f"{relative} is missing")
            elif entry and found["size"] != entry["size"]:
                problems.append(f"{relative} has {found['size']} bytes where {entry['size']} were written")
            elif entry and found["digest"] != entry["digest"]:
                problems.append(f"{relative} differs from the digest recorded when it was written")
        return problems

    def _manifest(self, name: str) -> dict[str, Any]:
        if self.remote:
            return self.store.read_json(f"{name}/{MANIFEST}")
        return json.loads((Path(self.store.root_path) / name / MANIFEST).read_text())

    def step_of(self, name: str) -> int:
        match = _NAME.match(name)
        if not match:
            raise ValueError(f"not a checkpoint name: {name!r}")
        return int(match.group(1))

    def local_path(self, name: str) -> Path:
        """A local directory holding checkpoint `name` (downloaded first when the root is remote)."""
        if not self.remote:
            return Path(self.store.root_path) / name
        target = self.cache_dir / name
        if (target / MANIFEST).exists():
            return target
        manifest = self.store.read_json(f"{name}/{MANIFEST}")
        index = manifest.get("index", {})
        for relative in manifest["files"]:
            data = self.store.read_bytes(f"{name}/{relative}")  # checked against the file's own manifest
            recorded = index.get(relative, {}).get("digest")
            if recorded and sha256_bytes(data) != recorded:
                raise CorruptArtifactError(self.store.uri(f"{name}/{relative}"), ["not the file the checkpoint recorded"])
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            (target / relative).write_bytes(data)
        (target / MANIFEST).write_text(json.dumps(manifest))  # last: it marks a complete download
        return target

    # -- housekeeping -------------------------------------------------------------------------
    def _prune(self) -> None:
        for name in self.complete()[: -self.keep]:
            if self.remote:
                manifest = self.store.read_json(f"{name}/{MANIFEST}")
                self.store.delete(f"{name}/{MANIFEST}")  # first: the checkpoint stops existing at once
                for relative in manifest["files"]:
                    self.store.delete(f"{name}/{relative}")
            else:
                path = Path(self.store.root_path) / name
                (path / MANIFEST).unlink(missing_ok=True)
                shutil.rmtree(path, ignore_errors=True)

    def _remove_stale_temp_dirs(self) -> None:
        for stale in Path(self.store.root_path).glob(".tmp-step-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _fsync_tree(directory: Path) -> None:
    """Flush every file before the rename, so a crash cannot leave a renamed but empty checkpoint."""
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
