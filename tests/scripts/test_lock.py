"""The lock files: current with their inputs, installed by `make setup`, and in step with each other."""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import lock

# What the workers run and the tests here must run too: a difference would test other code.
SHARED_BY_BOTH = ("torch", "transformers", "tokenizers", "safetensors", "deepspeed", "peft", "ray", "numpy", "pillow")


def locked(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_locks_were_resolved_from_the_files_as_they_are() -> None:
    # Changing pyproject.toml, constraints.txt or the worker image's versions needs `make lock`.
    for path in (lock.CPU_LOCK, lock.WORKER_LOCK):
        assert f"# inputs: {lock.inputs_digest()}" in path.read_text(), f"{path.name} is stale: run `make lock`"


def test_make_setup_installed_the_cpu_lock() -> None:
    if not sys.prefix.endswith(".venv"):
        pytest.skip("only the project's own environment is installed from the lock")
    pins = locked(lock.CPU_LOCK)
    drifted = {}
    for distribution in importlib.metadata.distributions():
        name = canonicalize_name(distribution.metadata["Name"])
        installed = distribution.version.split("+", 1)[0]
        if name in pins and installed != pins[name]:
            drifted[name] = f"{installed} installed, {pins[name]} locked"
    assert drifted == {}


@pytest.mark.parametrize(
    ("lock_path", "extras"),
    [(lock.CPU_LOCK, ("orchestrator", "train", "dev")), (lock.WORKER_LOCK, ("train", "gpu", "worker"))],
)
def test_each_lock_satisfies_the_project_requirements(lock_path: Path, extras: tuple[str, ...]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = locked(lock_path)
    requirements = [Requirement(text) for text in project["dependencies"]]
    requirements += [Requirement(text) for extra in extras for text in project["optional-dependencies"][extra]]
    unmet = [
        str(requirement)
        for requirement in requirements
        if requirement.marker is None or requirement.marker.evaluate()
        if canonicalize_name(requirement.name) not in pins
        or not requirement.specifier.contains(pins[canonicalize_name(requirement.name)], prereleases=True)
    ]
    assert unmet == []


def test_the_machine_learning_stack_is_the_same_on_both_sides() -> None:
    cpu, worker = locked(lock.CPU_LOCK), locked(lock.WORKER_LOCK)
    assert {name: (cpu[name], worker[name]) for name in SHARED_BY_BOTH if cpu[name] != worker[name]} == {}
