"""The verdict cache: keyed by everything a verdict depends on, persistent across instances."""

from __future__ import annotations

from pathlib import Path

from codedance_core.rewards.judge_cache import JudgeCache, verdict_key


def test_key_depends_on_every_part() -> None:
    base = ("model", "v1", "question", "gold", "prediction")
    keys = {verdict_key(*base)}
    for position in range(len(base)):
        changed = list(base)
        changed[position] += "!"
        keys.add(verdict_key(*changed))
    assert len(keys) == 1 + len(base)
    # no ambiguity from concatenation
    assert verdict_key("ab", "c", "", "", "") != verdict_key("a", "bc", "", "", "")


def test_round_trip_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "cache.sqlite"
    cache = JudgeCache(path)
    key = verdict_key("m", "v1", "q", "g", "p")
    assert cache.get(key) is None
    cache.put(key, 1.0, "Judgement: 1", model="m", prompt_version="v1")
    cache.close()
    reopened = JudgeCache(path)
    assert reopened.get(key) == (1.0, "Judgement: 1") and len(reopened) == 1
