"""The numbers of a run, with their uncertainty, computed from the result rows alone.

V*Bench has 191 items: one item moves accuracy by half a point, so a bare percentage invites
reading noise as progress (docs/method.md §8). Every accuracy here comes with a 95% interval:
- one sample per item: the Wilson score interval on (correct items, items), which behaves at
  0% and 100% where the normal approximation does not;
- k samples per item (avg@k): a percentile bootstrap over items of the per-item mean accuracy,
  because the k samples of one item are not independent draws and must be resampled together.

Every row counts: an item whose rollout or judge failed has accuracy 0 in the denominators (the
original's failed items vanished from them, inflating its scores).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Z_95 = 1.959963984540054


def wilson_interval(successes: float, total: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion; (0, 1) when there is nothing to measure."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(values: Sequence[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of `values` (seeded: reruns agree)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _per_item(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[str(row["item_id"])].append(row)
    return grouped


def accuracy_summary(rows: Sequence[Mapping[str, Any]], resamples: int = 2000) -> dict[str, Any]:
    """items, avg@k accuracy, its 95% CI and the method used; failed rows count as 0."""
    grouped = _per_item(rows)
    item_means = [float(np.mean([float(r.get("acc") or 0.0) for r in group])) for group in grouped.values()]
    samples = max((len(group) for group in grouped.values()), default=0)
    accuracy = _mean(item_means) or 0.0
    binary = all(value in (0.0, 1.0) for value in item_means)
    if samples <= 1 and binary:
        low, high = wilson_interval(sum(item_means), len(item_means))
        method = "wilson"
    else:
        low, high = bootstrap_interval(item_means, resamples)
        method = f"bootstrap_items_{resamples}"
    pass_at_k = _mean(
        [1.0 if any(float(r.get("acc") or 0) >= 0.5 for r in g) else 0.0 for g in grouped.values()]
    )
    return {
        "items": len(grouped),
        "samples_per_item": samples,
        "trajectories": len(rows),
        "accuracy": accuracy,
        "accuracy_ci95": [low, high],
        "ci_method": method,
        f"avg@{samples}": accuracy,
        f"pass@{samples}": pass_at_k or 0.0,
    }


def run_stats(rows: Sequence[Mapping[str, Any]], resamples: int = 2000) -> dict[str, Any]:
    """Everything `stats_{model}_{dataset}.json` holds, from the result rows."""
    summary = accuracy_summary(rows, resamples)
    total = max(1, len(rows))
    judged = [float(r["judge_score"]) for r in rows if r.get("judge_score") is not None]
    calls = sum(int(r.get("tool_calls") or 0) for r in rows)
    successes = sum(int(r.get("tool_successes") or 0) for r in rows)
    statuses: dict[str, int] = defaultdict(int)
    for row in rows:
        statuses[str(row.get("status"))] += 1
    summary.update(
        judge_score=_mean(judged),
        judged_trajectories=len(judged),
        turns=sum(int(r.get("turns") or 0) for r in rows) / total,
        tool_calls_per_trajectory=calls / total,
        tool_call_rate=sum(1 for r in rows if int(r.get("tool_calls") or 0) > 0) / total,
        code_success_rate=successes / calls if calls else None,
        failures=sum(count for status, count in statuses.items() if status != "scored"),
        statuses=dict(statuses),
        by_data_source=_breakdown(rows, "data_source", resamples),
    )
    return summary


def _breakdown(rows: Sequence[Mapping[str, Any]], key: str, resamples: int) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row.get(key) or "")].append(row)
    if len(groups) <= 1:
        return {}
    return {
        name: {
            k: v
            for k, v in accuracy_summary(group, resamples).items()
            if k in ("items", "accuracy", "accuracy_ci95")
        }
        for name, group in sorted(groups.items())
    }
