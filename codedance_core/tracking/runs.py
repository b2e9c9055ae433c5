"""MLflow runs with explicit parents, configs as params, and data lineage as dataset inputs.

Everything goes through `MlflowClient` with run ids passed explicitly. MLflow's fluent API keeps
the active run in thread-local state, which breaks as soon as a stage runs in a Prefect task
thread or a Ray worker: a child run would silently attach to the wrong parent. A `RunTracker`
is a run id and a client, nothing more, so it can be recreated anywhere from the id.

Lineage: each input artifact is logged as a dataset (name, store URI, content digest). A model
version points to its run, whose inputs point to the artifacts that made it, and so on back to
the data.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from codedance_core.storage import ArtifactRef

PARENT_TAG = "mlflow.parentRunId"
COMMIT_TAG = "mlflow.source.git.commit"
DATASET_SOURCE_TYPE = "codedance_store"
_PARAM_VALUE_LIMIT = 6000  # MLflow rejects longer param values
_BATCH_LIMIT = 100  # params per log_batch call


_METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")


def metric_name(name: str) -> str:
    """A name MLflow accepts: 'avg@8' -> 'avg_8' (MLflow rejects '@' and most punctuation)."""
    return _METRIC_NAME_UNSAFE.sub("_", name)


@cache
def source_commit() -> str | None:
    """The git commit of the checkout this package runs from, with "-dirty" when tracked files
    have changed since; None when it is not run from a git checkout (an installed wheel)."""
    here = Path(__file__).resolve()

    def git(*args: str) -> str:
        command = ["git", "-C", str(here.parent), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")) / "codedance_core" / "tracking" / here.name != here:
            return None  # some other repository around an installed copy
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "HEAD") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}: nested configs become MLflow params."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:_PARAM_VALUE_LIMIT]
    return flat


def experiment_id(client: MlflowClient, name: str, artifact_root: str | None = None) -> str:
    """The id of the named experiment, created (with its artifact root) if absent."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if artifact_root:
        location = artifact_root if "://" in artifact_root else Path(artifact_root).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


class RunTracker:
    """One MLflow run, addressed by id; safe to recreate in any thread or process."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri=tracking_uri)

    @classmethod
    def start(
        cls,
        tracking_uri: str,
        experiment: str,
        run_name: str,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        artifact_root: str | None = None,
    ) -> RunTracker:
        """Create a run (a child of parent_run_id when given) and return its tracker."""
        client = MlflowClient(tracking_uri=tracking_uri)
        all_tags = dict(tags or {})
        commit = source_commit()
        if commit and COMMIT_TAG not in all_tags:
            all_tags[COMMIT_TAG] = commit  # which code made the run, beside which data (lineage)
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        run = client.create_run(experiment_id(client, experiment, artifact_root), tags=all_tags, run_name=run_name)
        return cls(tracking_uri, run.info.run_id)

    # -- logging ---------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        flat = flatten(params)
        items = [Param(k, v) for k, v in sorted(flat.items())]
        for start in range(0, len(items), _BATCH_LIMIT):
            self.client.log_batch(self.run_id, params=items[start : start + _BATCH_LIMIT])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        values = [Metric(metric_name(k), float(v), now, step) for k, v in metrics.items() if v is not None]
        for start in range(0, len(values), _BATCH_LIMIT):
            self.client.log_batch(self.run_id, metrics=values[start : start + _BATCH_LIMIT])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dataset(self, name: str, ref: ArtifactRef, context: str = "input") -> None:
        """Record an artifact this run read (or wrote, context='output') by URI and digest."""
        source = f'{{"uri": "{ref.uri}"}}'
        dataset = Dataset(name=name, digest=ref.digest.split(":", 1)[-1][:36], source_type=DATASET_SOURCE_TYPE, source=source)
        tags = [InputTag("mlflow.data.context", context)]
        if ref.rows is not None:
            tags.append(InputTag("codedance.rows", str(ref.rows)))
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags)])

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, value: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(self.run_id, value, artifact_file)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    # -- reading back ----------------------------------------------------------------------------
    def children(self) -> list[str]:
        """Run ids of this run's direct children."""
        run = self.client.get_run(self.run_id)
        found = self.client.search_runs(
            [run.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{self.run_id}'"
        )
        return [r.info.run_id for r in found]

    def datasets(self) -> list[dict[str, str]]:
        """The artifacts this run logged as inputs: name, digest, source, context."""
        run = self.client.get_run(self.run_id)
        out = []
        for item in run.inputs.dataset_inputs:
            tags = {t.key: t.value for t in item.tags}
            out.append(
                {
                    "name": item.dataset.name,
                    "digest": item.dataset.digest,
                    "source": item.dataset.source,
                    "context": tags.get("mlflow.data.context", ""),
                }
            )
        return out


@contextmanager
def tracked_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    artifact_root: str | None = None,
) -> Iterator[RunTracker]:
    """A run that ends FINISHED when the block succeeds and FAILED (re-raising) when it does not."""
    tracker = RunTracker.start(tracking_uri, experiment, run_name, parent_run_id, tags, artifact_root)
    try:
        yield tracker
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
