"""A package's names resolve on first use, once, and only the names it declares."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codedance_core.lazy_exports import lazy_getattr


def test_a_name_resolves_from_its_module_and_is_kept() -> None:
    namespace: dict = {}
    getter = lazy_getattr("codedance_core.storage", namespace, {"join_uri": "uris"})
    assert getter("join_uri")("s3://b", "x") == "s3://b/x"
    assert "join_uri" in namespace
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        getter("nothing")


def test_importing_the_stage_layer_loads_no_stage() -> None:
    code = "import sys, codedance_core.stages; print(sorted(m for m in sys.modules if m.startswith('codedance_core.stages.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
