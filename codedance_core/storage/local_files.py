"""Local files written all or nothing: a temporary name beside the target, then a rename.

An artifact's plain path in a local store shows its current version: a hard link to the version's
file, or a symbolic link to its folder, swapped in with a rename like everything else here.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def temp_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def move_into_place(source: Path, target: Path) -> None:
    """Move a finished local file into place atomically (temp name in the target's folder, rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_beside(target)
    shutil.move(source, temp)  # a rename on the same device, a copy across devices
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, target)


def copy_into_place(source: Path, target: Path) -> None:
    """Copy a file into place atomically (a temporary name beside the target, then rename)."""
    if source.resolve() == target.resolve():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_beside(target)
    shutil.copyfile(source, temp)
    os.replace(temp, target)


def write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_beside(target)
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)


def show_file(stored: Path, target: Path) -> None:
    """Make `target` a hard link to the version `stored`, swapped in atomically."""
    _clear_folder(target)
    temp = temp_beside(target)
    try:
        os.link(stored, temp)
    except OSError:  # a filesystem without hard links: a copy (same bytes, twice the space)
        shutil.copyfile(stored, temp)
    os.replace(temp, target)


def show_folder(stored: Path, target: Path) -> None:
    """Make `target` a relative symbolic link to the version folder `stored`, swapped in atomically."""
    _clear_folder(target)
    temp = temp_beside(target)
    os.symlink(os.path.relpath(stored, target.parent), temp)
    os.replace(temp, target)


def _clear_folder(target: Path) -> None:
    """Remove a real folder at `target` (an artifact written before versions existed, or half of
    one): references to it fail their checks afterwards instead of reading a mix."""
    if target.is_dir() and not target.is_symlink():
        aside = temp_beside(target)
        os.rename(target, aside)
        shutil.rmtree(aside, ignore_errors=True)


def remove_path(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
