"""Paired comparison of two arms that answered the same held-out items.

Every arm of a seed is evaluated on that seed's one held-out split, so two arms differ item by item
and the difference of their accuracies is best judged on the per-item differences: an item both
arms get right (or both wrong) says nothing about which is better, and leaving it out of the
noise is what makes a paired test far more sensitive than comparing two independent intervals.

- `paired_bootstrap_ci`: a percentile bootstrap interval of the mean per-item difference,
  resampling items within each seed (why within: see the function).
- `mcnemar_exact`: McNemar's exact test, a binomial test on the discordant pairs.
- `detectable_difference` and `items_needed`: the power of a paired design (Connor 1987), from
  the share of discordant pairs, at 80% power and a two-sided alpha of 0.05 by default.

Pure numpy and the standard library; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

# The smallest accuracy difference the report asks the experiment to be able to detect.
TARGET_DIFFERENCE = 0.08

Expect = Literal["higher", "lower", "not lower", "not higher"]


@dataclass(frozen=True)
class PairedComparison:
    """Arm `a` against arm `b` on the same items; `difference` is mean(a - b)."""

    items: int
    difference: float
    ci95: tuple[float, float]
    a_better: int  # discordant pairs where a scored higher
    b_better: int
    p_value: float  # McNemar's exact test (the sign test when scores are not 0/1)
    discordance: float  # share of pairs that disagree
    # The smallest |difference| found with 80% power at alpha 0.05, and the pairs TARGET_DIFFERENCE
    # needs; None: not possible at this discordance.
    detectable: float | None
    items_needed: int | None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ci95": list(self.ci95)}


def match_items(
    a: Mapping[Hashable, float], b: Mapping[Hashable, float], what: str = "the two arms"
) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    """The keys both mappings share (sorted) and their values, aligned. Refuses, naming a few of the
    odd keys, unless both hold exactly the same keys: a comparison of arms on different items is
    not a paired one, and silently dropping the unmatched items would hide that something is wrong."""
    only_a, only_b = a.keys() - b.keys(), b.keys() - a.keys()
    if only_a or only_b:
        raise ValueError(
            f"{what} did not answer the same items: {len(only_a)} only in the first "
            f"(e.g. {sorted(map(str, only_a))[:3]}), {len(only_b)} only in the second "
            f"(e.g. {sorted(map(str, only_b))[:3]}); compare runs of the same seeds and held-out splits"
        )
    keys = sorted(a, key=str)
    return keys, np.array([a[k] for k in keys], dtype=float), np.array([b[k] for k in keys], dtype=float)


def paired_bootstrap_ci(
    a: np.ndarray,
    b: np.ndarray,
    strata: Sequence[Hashable],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a - b), resampling items within each stratum (seed).

    Why within each seed, not (seed, item) pairs from the pool: an item is shared by the arms only
    inside its seed (seeds have their own held-out splits, so the same item id in two seeds is two
    different items), and each seed contributes a fixed number of items to the pooled mean by
    design. Resampling inside each seed keeps both: a resample is made of whole items, each with
    both arms' answers, in the same number per seed as the data, so the seeds keep their weights
    and the interval reflects item sampling alone, as the point estimate does.

    Vectorised over resamples: drawing n items with replacement and summing their differences is
    the same as drawing how many of each distinct difference value are picked (a multinomial with
    the values' frequencies), so the work is resamples x distinct values, not resamples x items."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    strata = np.asarray([str(s) for s in strata])
    if diffs.size == 0 or diffs.size != strata.size:
        raise ValueError(
            f"need one stratum per pair and at least one pair (got {diffs.size} pairs, {strata.size} strata)"
        )
    rng = np.random.default_rng(seed)
    totals = np.zeros(resamples)
    for stratum in np.unique(strata):
        values, counts = np.unique(diffs[strata == stratum], return_counts=True)
        picks = rng.multinomial(counts.sum(), counts / counts.sum(), size=resamples)
        totals += picks @ values
    means = totals / diffs.size
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def mcnemar_exact(a_better: int, b_better: int) -> float:
    """Two-sided exact McNemar p-value: under no difference each discordant pair favours either arm
    with probability 1/2, so the smaller count is Binomial(discordant, 1/2); the p-value doubles
    its lower tail (capped at 1). Exact integer arithmetic, so any number of pairs is fine."""
    discordant = a_better + b_better
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(a_better, b_better) + 1))
    return min(1.0, 2 * tail / 2**discordant)


def _z(alpha: float, power: float) -> tuple[float, float]:
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)


def detectable_difference(
    items: int, discordance: float, *, alpha: float = 0.05, power: float = 0.8
) -> float | None:
    """The smallest difference in accuracy a paired design of `items` pairs detects with `power`
    (two-sided `alpha`), when a share `discordance` of pairs disagree.

    Solves Connor's sample size for McNemar's test, n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2,
    for d (a quadratic in d), with psi the discordance. None when even that d exceeds psi: a difference
    can never be larger than the share of pairs that disagree, so no difference is detectable."""
    if items <= 0 or discordance <= 0:
        return None
    z_a, z_b = _z(alpha, power)
    root = items - z_a**2 + z_b**2
    if root < 0:
        return None
    difference = math.sqrt(discordance) * (z_a * math.sqrt(items) + z_b * math.sqrt(root)) / (items + z_b**2)
    return difference if difference <= discordance else None


def items_needed(
    difference: float, discordance: float, *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Pairs needed to detect `difference` with `power` (two-sided `alpha`) when a share `discordance`
    of pairs disagree (Connor 1987). None when the difference is larger than the discordance allows."""
    if difference <= 0 or discordance < difference:
        return None
    z_a, z_b = _z(alpha, power)
    n = (z_a * math.sqrt(discordance) + z_b * math.sqrt(discordance - difference**2)) ** 2 / difference**2
    return math.ceil(n - 1e-9)  # a whole pair more only when n is not already (numerically) whole


def paired_comparison(
    a: np.ndarray,
    b: np.ndarray,
    strata: Sequence[Hashable],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    target: float = TARGET_DIFFERENCE,
) -> PairedComparison:
    """Everything the report says about arm `a` against arm `b` on the same items."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a_better, b_better = int((a > b).sum()), int((b > a).sum())
    discordance = (a_better + b_better) / a.size
    return PairedComparison(
        items=int(a.size),
        difference=float((a - b).mean()),
        ci95=paired_bootstrap_ci(a, b, strata, resamples=resamples, seed=seed),
        a_better=a_better,
        b_better=b_better,
        p_value=mcnemar_exact(a_better, b_better),
        discordance=discordance,
        detectable=detectable_difference(a.size, discordance),
        items_needed=items_needed(target, discordance),
    )


def verdict(ci95: Sequence[float], expect: Expect) -> str:
    """'holds', 'does not hold' or 'inconclusive' for an expectation about a - b, from its interval.

    'higher'/'lower': holds when the interval excludes 0 on that side, does not hold when it excludes
    0 on the other side, inconclusive when it includes 0. 'not lower'/'not higher' (no loss): does not
    hold only when the interval excludes 0 on the wrong side, else holds."""
    low, high = ci95
    above, below = low > 0, high < 0
    if expect == "higher":
        return "holds" if above else "does not hold" if below else "inconclusive"
    if expect == "lower":
        return "holds" if below else "does not hold" if above else "inconclusive"
    if expect == "not lower":
        return "does not hold" if below else "holds"
    return "does not hold" if above else "holds"
