"""Helpers for the infra tests: where the files are, a small Dockerfile reader, the image names.

Nothing in infra/ can run on this machine (no Kubernetes, no Docker engine, no GPU), so the tests
read the files as their tools would and check the facts the deployment relies on.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
IMAGE_REGISTRY = "ghcr.io/codedance"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: comments and parser directives dropped, `\\` lines joined."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are removed by Docker
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, arguments = " ".join(pending).partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
            pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def build_args(instructions: list[Instruction]) -> dict[str, str]:
    """Every `ARG NAME=default` of a Dockerfile."""
    defaults: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, _, value = instruction.arguments.partition("=")
            defaults[name.strip()] = value.strip()
    return defaults


def expand_args(value: str, defaults: dict[str, str]) -> str:
    """`${NAME}` / `$NAME` replaced by the ARG defaults, as `docker build` does with no --build-arg."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda match: defaults.get(match[1], match[0]), value)


def image_tag(reference: str) -> str | None:
    """The tag of an image reference (`repo:tag`, `host:port/repo:tag`), None when it has none."""
    name = reference.split("@", 1)[0]
    last_part = name.rsplit("/", 1)[-1]
    return last_part.rsplit(":", 1)[1] if ":" in last_part else None


def shell_words(command: str) -> list[str]:
    return shlex.split(command)


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((INFRA / relative).read_text())


def project_version() -> str:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def expected_image(role: str) -> str:
    """The one image name per role that every manifest uses: registry/codedance-ROLE:VERSION."""
    return f"{IMAGE_REGISTRY}/codedance-{role}:{project_version()}"
