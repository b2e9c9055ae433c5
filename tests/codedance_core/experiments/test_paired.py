"""Paired comparison of two arms on the same items: bootstrap interval, McNemar, power, verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from codedance_core.experiments.paired import (
    detectable_difference,
    items_needed,
    match_items,
    mcnemar_exact,
    paired_bootstrap_ci,
    paired_comparison,
    verdict,
)


def simulated_pairs(
    rng: np.random.Generator, items: int, a_only: float, b_only: float
) -> tuple[np.ndarray, np.ndarray]:
    """0/1 scores of two arms on `items` items: a share `a_only` right for A alone, `b_only` for B alone,
    the rest agreeing (right or wrong for both); the true difference is a_only - b_only."""
    kind = rng.choice(4, size=items, p=[a_only, b_only, 0.3, 0.7 - a_only - b_only])
    a = np.isin(kind, (0, 2)).astype(float)
    b = np.isin(kind, (1, 2)).astype(float)
    return a, b


def test_the_bootstrap_interval_covers_a_known_difference_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    seeds = np.repeat([0, 1, 2], 50)
    covered = 0
    for trial in range(200):
        a, b = simulated_pairs(rng, seeds.size, a_only=0.2, b_only=0.1)  # true difference 0.1
        low, high = paired_bootstrap_ci(a, b, seeds, resamples=2000, seed=trial)
        covered += low <= 0.1 <= high
    assert 0.88 <= covered / 200 <= 0.99


def test_the_bootstrap_is_seeded_and_resamples_within_each_seed() -> None:
    a = np.array([1.0] * 50 + [0.0] * 50)
    b = np.zeros(100)
    # Seed 0: A right on every item; seed 1: both wrong on every item. Resampling items within each
    # seed keeps 50 of each, so every resample has the same difference; pooled resampling would not.
    assert paired_bootstrap_ci(a, b, [0] * 50 + [1] * 50) == (0.5, 0.5)
    mixed = [0, 1] * 50
    assert paired_bootstrap_ci(a, b, mixed, seed=3) == paired_bootstrap_ci(a, b, mixed, seed=3)
    low, high = paired_bootstrap_ci(a, b, mixed, seed=3)
    assert low < 0.5 < high


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs() -> None:
    # 8 pairs favour A, 2 favour B: 2 * P(X <= 2), X ~ Binomial(10, 1/2) = 2 * (1 + 10 + 45) / 1024.
    assert mcnemar_exact(8, 2) == pytest.approx(2 * 56 / 1024)
    assert mcnemar_exact(2, 8) == mcnemar_exact(8, 2)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)


def test_detectable_difference_and_items_needed_match_a_hand_calculation() -> None:
    # Connor (1987): n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2, z_a = 1.959964, z_b = 0.841621.
    # psi = 0.2, d = 0.08: (1.959964 * 0.447214 + 0.841621 * 0.44)^2 / 0.0064 = 242.9 -> 243 pairs.
    assert items_needed(0.08, 0.2) == 243
    # 150 pairs at psi = 0.2, solved for d by hand from the same formula: 0.10150.
    assert detectable_difference(150, 0.2) == pytest.approx(0.10150, abs=1e-5)
    assert items_needed(detectable_difference(150, 0.2), 0.2) == 150  # one formula, both ways
    # A difference can never exceed the share of pairs that disagree.
    assert items_needed(0.08, 0.05) is None
    assert detectable_difference(150, 0.0) is None and detectable_difference(10, 0.02) is None


def test_arms_that_answered_different_items_are_refused() -> None:
    a = {("0", "count:1"): 1.0, ("0", "count:2"): 0.0}
    b = {("0", "count:1"): 1.0, ("1", "count:2"): 0.0}
    with pytest.raises(ValueError, match="did not answer the same items: 1 only in the first"):
        match_items(a, b)
    keys, a_values, b_values = match_items(a, {("0", "count:2"): 1.0, ("0", "count:1"): 1.0})
    assert keys == [("0", "count:1"), ("0", "count:2")]
    assert a_values.tolist() == [1.0, 0.0] and b_values.tolist() == [1.0, 1.0]


def test_identical_arms_give_an_interval_around_zero_and_an_inconclusive_verdict() -> None:
    scores = np.random.default_rng(0).integers(0, 2, 150).astype(float)
    same = paired_comparison(scores, scores.copy(), np.repeat([0, 1, 2], 50))
    assert same.difference == 0.0 and same.ci95 == (0.0, 0.0)
    assert same.p_value == 1.0 and same.detectable is None and same.items_needed is None
    assert verdict(same.ci95, "higher") == "inconclusive" and verdict(same.ci95, "lower") == "inconclusive"


def test_a_large_paired_difference_is_found_with_its_numbers() -> None:
    rng = np.random.default_rng(1)
    a, b = simulated_pairs(rng, 150, a_only=0.3, b_only=0.05)
    found = paired_comparison(a, b, np.repeat([0, 1, 2], 50))
    assert found.ci95[0] > 0 and found.p_value < 0.01
    assert found.a_better == int(((a == 1) & (b == 0)).sum())
    assert found.b_better == int(((a == 0) & (b == 1)).sum())
    assert found.discordance == pytest.approx((found.a_better + found.b_better) / 150)
    assert found.detectable is not None and found.detectable < found.difference
    assert found.to_dict()["ci95"] == list(found.ci95)


def test_verdicts_follow_where_the_interval_lies() -> None:
    assert verdict((0.01, 0.2), "higher") == "holds"
    assert verdict((-0.2, -0.01), "higher") == "does not hold"
    assert verdict((-0.05, 0.2), "higher") == "inconclusive"
    assert verdict((-0.2, -0.01), "lower") == "holds"
    assert verdict((0.01, 0.2), "lower") == "does not hold"
    assert verdict((-0.05, 0.02), "not lower") == "holds"
    assert verdict((-0.2, -0.01), "not lower") == "does not hold"
    assert verdict((0.01, 0.2), "not higher") == "does not hold"
