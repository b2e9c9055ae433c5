"""Scratch folders carry their owner's pid; a sweep removes only this user's folders whose owner died."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from codedance_core.scratch import make_scratch_dir, owner_tag, scratch_path, sweep_stale

PREFIX = "codedance-test-"


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def _namespace() -> int:
    return int(owner_tag()[:-1].split("n")[1])


def test_a_scratch_path_is_named_for_this_process_and_made_only_when_needed(tmp_path):
    path = scratch_path(PREFIX, tmp_path)
    assert path.name.startswith(f"{PREFIX}{os.getpid()}n") and not path.exists()
    made = make_scratch_dir(PREFIX, tmp_path)
    assert made.name.startswith(PREFIX + owner_tag()) and made.stat().st_mode & 0o777 == 0o700


def test_a_sweep_removes_the_folders_of_dead_owners_only(tmp_path):
    dead = tmp_path / f"{PREFIX}{_dead_pid()}n{_namespace()}-abc"
    other_namespace = tmp_path / f"{PREFIX}{_dead_pid()}n{_namespace() + 1}-abc"
    unnamed = tmp_path / f"{PREFIX}k3j_x9q1"  # a plain mkdtemp name: no owner to ask
    for folder in (dead, other_namespace, unnamed):
        (folder / "inside").mkdir(parents=True)
    own = make_scratch_dir(PREFIX, tmp_path)
    assert sweep_stale(PREFIX, tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (other_namespace, unnamed, own)
    )


@pytest.mark.skipif(os.getuid() != 0, reason="making a folder of another user takes root")
def test_a_sweep_leaves_the_folders_of_other_users(tmp_path):
    theirs = tmp_path / f"{PREFIX}{_dead_pid()}n{_namespace()}-abc"
    theirs.mkdir()
    os.chown(theirs, 4321, 4321)
    assert sweep_stale(PREFIX, tmp_path) == [] and theirs.exists()
