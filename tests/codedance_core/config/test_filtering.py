"""FilterConfig's scoring digest: what decides a shard's scores, the inherited loop settings included."""

from __future__ import annotations

from codedance_core.config.agent import RolloutOverrides, RolloutSettings
from codedance_core.config.filtering import FilterConfig


def test_the_scoring_digest_covers_the_effective_loop_settings() -> None:
    config = FilterConfig(rollout=RolloutOverrides(max_turns=1))
    digest = config.scoring_digest()
    assert config.scoring_digest(RolloutSettings(top_p=0.5)) != digest  # inherited: it decides the answers
    assert config.scoring_digest(RolloutSettings(max_turns=4)) == digest  # overridden by the filter
    assert FilterConfig(rollout=RolloutOverrides(max_turns=2)).scoring_digest() != digest


def test_timing_and_bucket_edges_leave_the_scoring_digest_alone() -> None:
    config = FilterConfig()
    digest = config.scoring_digest()
    assert config.scoring_digest(RolloutSettings(batch_wait_ms=500, early_sessions=False)) == digest
    assert FilterConfig(trivial_threshold=0.9).scoring_digest() == digest
    # the same effective settings, written as an override or inherited, score the same shards
    assert FilterConfig(rollout=RolloutOverrides(max_turns=6)).scoring_digest() == digest
