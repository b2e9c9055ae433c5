"""The artifact store under test, on a local folder and on S3 (a moto server on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codedance_core.storage import ArtifactStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return ArtifactStore(f"s3://{bucket}/prefix")
