"""Load a profile from YAML with command-line overrides, failing early and precisely.

A bad config must stop a run before any work starts, and the message must say which field
to fix: every validation error is reported with its dotted path (`sandbox.timeout_s`) and the
file it came from. Overrides use the same dotted paths (`--set sandbox.timeout_s=5`), with
values parsed as YAML scalars so `5`, `true` and `[a, b]` mean what they look like.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from codedance_core.config.profile import ProfileConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says what to fix."""


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """`tiny` -> configs/tiny.yaml; a path is taken as is."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.exists():
            raise ConfigError(f"config file not found: {candidate}")
        return candidate
    named = CONFIG_DIR / f"{name_or_path}.yaml"
    if not named.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown profile {name_or_path!r}; known profiles: {', '.join(known)}")
    return named


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Set `a.b.c=value` in a nested dict, creating intermediate tables as needed."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not of the form key.path=value")
    dotted, raw = assignment.split("=", 1)
    keys = [k for k in dotted.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {assignment!r} has an empty key")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {key!r} is not a table")
        node = child
    try:
        node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {assignment!r}: value is not valid YAML ({exc})") from exc


def yaml_error_line(path: Path, exc: yaml.YAMLError) -> str:
    """`FILE, line L, column C: not valid YAML (problem)`: the file and the place to fix, on one line."""
    mark = getattr(exc, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{path}{where}: not valid YAML ({problem}); fix the syntax there"


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(root)"
        detail = item["msg"]
        if item["type"] == "extra_forbidden":
            detail = "unknown key (check the spelling; see `codedance config show`)"
        lines.append(f"  {path}: {detail}")
    return "\n".join(lines)


def validate_tree(tree: dict[str, Any], source: str) -> ProfileConfig:
    try:
        return ProfileConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_profile(name_or_path: str | Path = "tiny", overrides: list[str] | None = None) -> ProfileConfig:
    """The validated profile from configs/<name>.yaml (or a path) with overrides applied."""
    path = resolve_profile_path(name_or_path)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_line(path, exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as a YAML file ({exc})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    for assignment in overrides or []:
        apply_override(tree, assignment)
    return validate_tree(tree, str(path))


def dump_profile(profile: ProfileConfig) -> str:
    """The full profile as YAML, every default included: what a run prints and logs."""
    return yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False)
