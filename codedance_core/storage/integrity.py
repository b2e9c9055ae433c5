"""Digests of files and folders, and the checks a reader makes before it trusts what it read.

A stored folder is described by its index (`_index.json`: every file's size and digest); its
digest is that of the index. A reader compares sizes always (a stat) and digests when it has just
downloaded the bytes, and refuses a mismatch with `CorruptArtifactError`, which names the artifact,
the files that differ and what to do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

DIRECTORY_INDEX = "_index.json"
_CHUNK = 1 << 20
_REWRITE_HINT = (
    "write the artifact again (rerun the stage that produced it), or delete it so that it is rebuilt"
)


class CorruptArtifactError(ValueError):
    """Stored bytes that do not match the size or digest their reference records (a data error:
    retrying reads the same bytes)."""

    def __init__(self, uri: str, problems: list[str], hint: str = _REWRITE_HINT) -> None:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        super().__init__(f"{uri} is not what was written: {shown}; {hint}")
        self.uri = uri
        self.problems = problems


def sha256_file(path: str | Path) -> str:
    """'sha256:<hex>' of a local file, read in chunks (artifacts may be many GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def sha256_bytes(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def directory_index(local: Path) -> dict[str, dict[str, Any]]:
    """Every file of a folder (its index file aside) with its digest and size: what a stored folder's
    digest is made of."""
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.name != DIRECTORY_INDEX)
    return {str(p.relative_to(local)): {"digest": sha256_file(p), "size": p.stat().st_size} for p in files}


def bytes_problems(data: bytes, size: int, digest: str) -> list[str]:
    if len(data) != size:
        return [f"{len(data)} bytes where {size} were written"]
    if sha256_bytes(data) != digest:
        return [f"digest {sha256_bytes(data)[:19]}... where {digest[:19]}... was written"]
    return []


def folder_problems(local: Path, index: dict[str, dict[str, Any]], digests: bool) -> list[str]:
    """How a local folder differs from its index: missing or resized files always, changed contents
    too when `digests` (that reads every byte)."""
    problems: list[str] = []
    for name, entry in sorted(index.items()):
        path = local / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"{name} has {path.stat().st_size} bytes where {entry['size']} were written")
        elif digests and sha256_file(path) != entry["digest"]:
            problems.append(f"{name} differs from the digest in its index")
    return problems
