"""A local Ray for the stage tests (started by the first stage that launches), shut down after them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codedance_core.data.schemas import SFT_ARROW_SCHEMA
from codedance_core.stages import StageContext, Tracking
from codedance_core.storage import ArtifactRef, ArtifactStore
from tests.codedance_core.train.rows import trajectory_row


@pytest.fixture(scope="module", autouse=True)
def local_ray(monkeypatch_module) -> Iterator[None]:
    """No RAY_ADDRESS: each stage starts (or reuses) a local Ray; it is stopped after the module."""
    import ray

    monkeypatch_module.delenv("RAY_ADDRESS", raising=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture
def ctx(tmp_path: Path) -> StageContext:
    """A context storing into tmp_path and tracking into an MLflow database there."""
    tracking = Tracking.of(f"sqlite:///{tmp_path / 'mlflow.db'}", "stages", str(tmp_path / "mlartifacts"))
    return StageContext(str(tmp_path / "store"), tracking)


@pytest.fixture
def stored_model(ctx: StageContext, tiny_model_dir: Path) -> ArtifactRef:
    return ctx.store().write_directory("models/tiny", tiny_model_dir)


@pytest.fixture
def stored_sft_rows(ctx: StageContext) -> ArtifactRef:
    store: ArtifactStore = ctx.store()
    with store.stage("data/sft.parquet") as staged:
        rows = [trajectory_row(i) for i in range(12)]
        pq.write_table(pa.Table.from_pylist(rows, schema=SFT_ARROW_SCHEMA), staged.path)
    assert staged.ref is not None
    return staged.ref
