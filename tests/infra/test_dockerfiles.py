"""The two images, read as `docker build` would: a pinned base first, a non-root user, every
pip install under the image's lock file (`make lock`), and only files that exist copied in."""

from __future__ import annotations

import re

import pytest

from tests.infra.infra_files import (
    INFRA,
    REPO_ROOT,
    Instruction,
    build_args,
    expand_args,
    image_tag,
    parse_dockerfile,
)

ROOT_USERS = {"root", "0", "0:0", "root:root"}
LOCKS = {"worker": "locks/gpu-worker.txt", "orchestrator": "locks/cpu.txt"}


def dockerfile_problems(instructions: list[Instruction], lock: str) -> list[str]:
    """What would make an image unreproducible or unsafe; empty when the Dockerfile is fine."""
    problems: list[str] = []
    defaults = build_args(instructions)
    keywords = [instruction.keyword for instruction in instructions]
    first_other = next((keyword for keyword in keywords if keyword != "ARG"), None)
    if first_other != "FROM":
        problems.append(f"the first instruction after the ARGs is {first_other}, not FROM")
    for instruction in instructions:
        if instruction.keyword == "FROM":
            image = expand_args(instruction.arguments.split()[0], defaults)
            tag = image_tag(image)
            if tag is None or tag == "latest" or "$" in image:
                problems.append(f"line {instruction.line}: base image {image!r} is not pinned to a tag")
    users = [
        instruction.arguments.split()[0] for instruction in instructions if instruction.keyword == "USER"
    ]
    if not users or users[-1] in ROOT_USERS:
        problems.append("the image runs as root (no USER, or the last USER is root)")
    copied = " ".join(i.arguments for i in instructions if i.keyword == "COPY")
    if lock not in copied:
        problems.append(f"{lock} is not copied into the image")
    for instruction in instructions:
        if instruction.keyword != "RUN":
            continue
        for segment in re.split(r"&&|;", instruction.arguments):
            if (
                "pip install" in segment
                and "--upgrade pip" not in segment
                and f"-c {lock}" not in segment
            ):
                problems.append(f"line {instruction.line}: pip install without -c {lock}")
        if re.search(r"pip install[^()]*\|\|\s*true", instruction.arguments):
            problems.append(f"line {instruction.line}: a failing pip install would be ignored (|| true)")
    return problems


def copied_sources(instructions: list[Instruction]) -> list[str]:
    """The build-context paths that COPY instructions read (flags and destination dropped)."""
    sources: list[str] = []
    for instruction in instructions:
        if instruction.keyword == "COPY":
            words = [word for word in instruction.arguments.split() if not word.startswith("--")]
            sources.extend(words[:-1])
    return sources


def test_the_parser_joins_continued_lines_and_drops_comments() -> None:
    text = "# syntax=docker/dockerfile:1\nARG BASE=python:3.11-slim\nFROM ${BASE}\n# why\nRUN a \\\n    # inner\n    && b\n"
    instructions = parse_dockerfile(text)
    assert [(i.keyword, i.arguments, i.line) for i in instructions] == [
        ("ARG", "BASE=python:3.11-slim", 2),
        ("FROM", "${BASE}", 3),
        ("RUN", "a && b", 5),
    ]


def test_the_checks_catch_an_unpinned_root_image_without_constraints() -> None:
    bad = parse_dockerfile("RUN echo hi\nFROM python:latest\nRUN pip install .[train] || true\n")
    problems = " | ".join(dockerfile_problems(bad, "locks/cpu.txt"))
    for expected in ("not FROM", "not pinned", "runs as root", "locks/cpu.txt is not copied", "without -c"):
        assert expected in problems
    assert "would be ignored" in problems


@pytest.mark.parametrize("role", ["worker", "orchestrator"])
def test_each_image_is_pinned_non_root_and_constrained(role: str, dockerfiles: dict) -> None:
    assert dockerfile_problems(dockerfiles[role], LOCKS[role]) == []


@pytest.mark.parametrize("role", ["worker", "orchestrator"])
def test_each_image_copies_only_what_exists_and_ignores_the_venv(role: str, dockerfiles: dict) -> None:
    for source in copied_sources(dockerfiles[role]):
        assert (REPO_ROOT / source).exists(), (
            f"{role}.Dockerfile copies {source}, which is not in the repository"
        )
    ignore = (INFRA / "docker" / f"{role}.Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignore and ".git" in ignore


def test_the_worker_image_has_cuda_torch_vllm_deepspeed_and_the_gpu_extras(dockerfiles: dict) -> None:
    instructions = dockerfiles["worker"]
    defaults = build_args(instructions)
    base = expand_args(next(i for i in instructions if i.keyword == "FROM").arguments, defaults)
    assert base.startswith("nvidia/cuda:")
    assert defaults["PYTHON_VERSION"] == "3.11"
    runs = " ".join(expand_args(i.arguments, defaults) for i in instructions if i.keyword == "RUN")
    assert "--index-url https://download.pytorch.org/whl/cu" in runs and " torch" in runs
    assert f'"vllm=={defaults["VLLM_VERSION"]}"' in runs
    assert '".[train,gpu,worker]"' in runs
    # DeepSpeed comes with the `train` extra.
    assert "deepspeed" in (REPO_ROOT / "pyproject.toml").read_text().split("train = [", 1)[1].split("]")[0]


def test_the_orchestrator_image_has_no_gpu_stack(dockerfiles: dict) -> None:
    instructions = dockerfiles["orchestrator"]
    runs = " ".join(i.arguments for i in instructions if i.keyword == "RUN")
    assert '".[orchestrator]"' in runs
    assert "vllm" not in runs and "gpu" not in runs and "download.pytorch.org" not in runs
    exposed = " ".join(i.arguments for i in instructions if i.keyword == "EXPOSE").split()
    assert {"4200", "5000"} <= set(exposed)  # Prefect UI/API and MLflow


def test_the_worker_image_can_sandbox_code_without_root(dockerfiles: dict) -> None:
    # Model code runs in bubblewrap as the image's non-root user: bwrap is installed, and the build
    # fails if it is setuid (a setuid bwrap refuses the sandbox's capabilities to non-root callers).
    instructions = dockerfiles["worker"]
    defaults = build_args(instructions)
    runs = " ".join(expand_args(i.arguments, defaults) for i in instructions if i.keyword == "RUN")
    assert re.search(r"apt-get install [^&]*\bbubblewrap\b", runs)
    assert 'test ! -u "$(command -v bwrap)"' in runs
    users = [i.arguments.split()[0] for i in instructions if i.keyword == "USER"]
    assert users[-1] == "ray" and f"--uid {defaults['USER_UID']}" in runs and defaults["USER_UID"] == "1000"
