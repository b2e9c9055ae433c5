"""The GPU worker image installs every third-party package that worker code imports.

Worker code is what runs inside Ray workers: the import closure of the training, generation and
scoring entry modules and of every stage module (`codedance_core.stages.code_version`, read from
the source, nothing imported). What the image installs is read from its Dockerfile's `pip install`
lines: the project with its extras plus the explicit requirements, closed over their dependencies
with the metadata of the distributions installed here (vLLM is not installable on CPU, so its own
dependencies are not followed; it counts as installed because the image names it).

Some packages are loaded by URI scheme, never imported by name: fsspec opens `s3://` through
s3fs, and MLflow uploads to an `s3://` artifact root through boto3. The paper profile's store and
artifact root say which schemes a worker meets.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from fsspec.registry import known_implementations
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from codedance_core.config import load_profile
from codedance_core.stages.code_version import DEFAULT_ROOTS, third_party_modules
from codedance_core.storage.uris import scheme_of
from tests.infra.infra_files import REPO_ROOT, build_args, expand_args, parse_dockerfile

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())

# The modules Ray workers start from; every stage module is added by `worker_modules`.
WORKER_ENTRY_MODULES = (
    "codedance_core.train.sft",
    "codedance_core.train.grpo",
    "codedance_core.evaluation.entry",
    "codedance_core.filtering.pipeline",
    "codedance_core.filtering.scoring",
    "codedance_core.filtering.weak_model",
    "codedance_core.synthesis.pipeline",
    "codedance_core.models",
    "codedance_core.data.suite.generator",
    "codedance_core.data.validate",
    "codedance_core.tracking",
    "codedance_core.storage",
    "codedance_core.engines.vllm",
)
# MLflow's artifact repositories import their client library when they run (e.g.
# mlflow/store/artifact/s3_artifact_repo.py imports boto3 inside its functions).
MLFLOW_ARTIFACT_CLIENTS = {"s3": "boto3"}
# pip options that take a value (the value is not a requirement).
PIP_OPTIONS_WITH_VALUE = {"-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f", "--find-links"}


def worker_modules() -> list[str]:
    """The entry modules and every module of `codedance_core.stages` as it is on disk now."""
    stages = DEFAULT_ROOTS["codedance_core"] / "stages"
    return [
        *WORKER_ENTRY_MODULES,
        "codedance_core.stages",
        *(f"codedance_core.stages.{path.stem}" for path in sorted(stages.glob("*.py")) if path.stem != "__init__"),
    ]


def scheme_loaded_modules() -> dict[str, str]:
    """Top-level module -> why a worker loads it by URI scheme, for the paper profile's URIs."""
    paper = load_profile("paper")
    modules: dict[str, str] = {}
    store_scheme = scheme_of(paper.store.root)
    if store_scheme != "file":
        backend = known_implementations[store_scheme]["class"].split(".")[0]
        modules[backend] = f"fsspec's {store_scheme}:// backend (the store root {paper.store.root})"
    artifact_scheme = scheme_of(paper.tracking.artifact_root)
    if artifact_scheme in MLFLOW_ARTIFACT_CLIENTS:
        modules[MLFLOW_ARTIFACT_CLIENTS[artifact_scheme]] = (
            f"MLflow's {artifact_scheme}:// artifact client (the artifact root {paper.tracking.artifact_root})"
        )
    return modules


def pip_install_arguments(dockerfile: str) -> list[str]:
    """The requirement arguments of every `pip install` in a Dockerfile's RUN lines, ARGs expanded."""
    instructions = parse_dockerfile(dockerfile)
    defaults = build_args(instructions)
    arguments: list[str] = []
    for instruction in instructions:
        if instruction.keyword != "RUN":
            continue
        for segment in re.split(r"&&|;", expand_args(instruction.arguments, defaults)):
            words = shlex.split(segment)
            if "pip" not in words or "install" not in words:
                continue
            rest = words[words.index("install") + 1:]
            skip_next = False
            for word in rest:
                if skip_next:
                    skip_next = False
                elif word in PIP_OPTIONS_WITH_VALUE:
                    skip_next = True
                elif not word.startswith("-"):
                    arguments.append(word)
    return arguments


def project_requirements(spec: str) -> list[Requirement]:
    """`.` or `.[a,b]`: the project's base dependencies plus those extras' requirements."""
    match = re.fullmatch(r"\.(?:\[([\w,\s-]*)\])?", spec)
    assert match, f"not a project install spec: {spec}"
    extras = [extra.strip() for extra in (match[1] or "").split(",") if extra.strip()]
    optional = PYPROJECT["project"]["optional-dependencies"]
    unknown = [extra for extra in extras if extra not in optional]
    assert not unknown, f"{spec} names extras pyproject.toml does not define: {unknown}"
    texts = PYPROJECT["project"]["dependencies"] + [text for extra in extras for text in optional[extra]]
    return [Requirement(text) for text in texts]


def image_distributions(install_arguments: Iterable[str]) -> set[str]:
    """The normalised names of every distribution those `pip install` arguments install."""
    pending: list[tuple[Requirement, tuple[str, ...]]] = []
    for argument in install_arguments:
        requirements = project_requirements(argument) if argument.startswith(".") else [Requirement(argument)]
        pending.extend((requirement, ("",)) for requirement in requirements)
    names: set[str] = set()
    expanded: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement, active_extras = pending.pop()
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": extra}) for extra in active_extras):
            continue
        name = canonicalize_name(requirement.name)
        names.add(name)
        if (name, frozenset(requirement.extras)) in expanded:
            continue
        expanded.add((name, frozenset(requirement.extras)))
        try:
            dependencies = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (vLLM): the image installs it, its dependencies are unknown here
        extras = ("", *sorted(requirement.extras))
        pending.extend((Requirement(text), extras) for text in dependencies)
    return names


@cache
def distributions_of_modules() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_providing(module: str) -> set[str]:
    """Normalised distributions that provide a top-level module (its own name when none here does)."""
    return {canonicalize_name(name) for name in distributions_of_modules().get(module, [module])}


def missing_from_image(needed: dict[str, str], installed: set[str]) -> list[str]:
    """One line per needed module that no installed distribution provides (empty when all are)."""
    return [
        f"{module} ({why}) needs {' or '.join(sorted(distributions_providing(module)))}"
        for module, why in sorted(needed.items())
        if not distributions_providing(module) & installed
    ]


def worker_needs() -> dict[str, str]:
    """Every top-level module a worker imports or loads by scheme -> which worker code needs it."""
    needs: dict[str, list[str]] = {}
    for entry in worker_modules():
        for module in third_party_modules([entry]):
            needs.setdefault(module, []).append(entry)
    reasons = {module: "imported by " + ", ".join(entries) for module, entries in needs.items()}
    return reasons | scheme_loaded_modules()


def worker_dockerfile() -> str:
    return (REPO_ROOT / "infra" / "docker" / "worker.Dockerfile").read_text()


def test_the_worker_image_installs_every_package_worker_code_needs() -> None:
    installed = image_distributions(pip_install_arguments(worker_dockerfile()))

    missing = missing_from_image(worker_needs(), installed)

    assert not missing, "the worker image lacks:\n  " + "\n  ".join(missing)


def test_no_worker_module_imports_prefect() -> None:
    assert "prefect" not in third_party_modules(worker_modules())


def test_the_check_flags_what_an_image_without_the_extras_lacks() -> None:
    # The library's base dependencies alone: no torch, no MLflow client, no S3 backend.
    bare = image_distributions(pip_install_arguments('RUN pip install -c constraints.txt "."'))

    missing = "\n".join(missing_from_image(worker_needs(), bare))

    for module in ("torch", "transformers", "mlflow", "s3fs"):
        assert f"\n{module} (" in f"\n{missing}", module


def test_the_dockerfile_reader_finds_the_project_ray_and_vllm() -> None:
    arguments = pip_install_arguments(worker_dockerfile())
    installed = image_distributions(arguments)

    assert any(argument.startswith(".[") and "worker" in argument for argument in arguments)
    assert {"torch", "ray", "vllm", "deepspeed", "mlflow-skinny", "s3fs", "boto3"} <= installed
    # The orchestrator's stack stays out of the GPU image.
    assert not {"prefect", "mlflow", "psycopg2-binary"} & installed


def test_the_worker_mlflow_client_has_the_orchestrator_mlflow_range() -> None:
    optional = PYPROJECT["project"]["optional-dependencies"]
    orchestrator = {Requirement(text).name: Requirement(text).specifier for text in optional["orchestrator"]}
    worker = {Requirement(text).name: Requirement(text).specifier for text in optional["worker"]}

    # mlflow X requires mlflow-skinny == X: one range on both sides keeps client and server in step.
    assert worker["mlflow-skinny"] == orchestrator["mlflow"]
    assert importlib.metadata.version("mlflow-skinny") == importlib.metadata.version("mlflow")


def test_the_stage_modules_are_part_of_worker_code() -> None:
    stage_files = {path.stem for path in (Path(DEFAULT_ROOTS["codedance_core"]) / "stages").glob("*.py")}

    assert {f"codedance_core.stages.{stem}" for stem in stage_files - {"__init__"}} <= set(worker_modules())
    assert "codedance_core.stages.code_version" in worker_modules()
