"""One small PNG per run: accuracy by data_source and by tool use, with 95% intervals.

People look rather than read; two bar groups answer the first two questions asked of a run
("where does it fail?" and "does the code help?") at a glance. matplotlib's Agg backend is
used explicitly so the plot renders on a headless worker.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codedance_core.evaluation.stats import accuracy_summary


def accuracy_groups(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Accuracy summaries keyed 'source: NAME' and 'tools: used' / 'tools: none'."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[f"source: {row.get('data_source') or '?'}"].append(row)
        groups["tools: used" if int(row.get("tool_calls") or 0) > 0 else "tools: none"].append(row)
    return {name: accuracy_summary(group, resamples=500) for name, group in sorted(groups.items())}


def plot_accuracy(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path:
    """Horizontal bars of accuracy (with CI whiskers and item counts) per group, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = accuracy_groups(rows)
    names = list(groups)
    values = [100 * groups[name]["accuracy"] for name in names]
    # Clamped at 0: at accuracy 0 or 1 rounding can put the interval a hair past the value.
    lows = [max(0.0, values[i] - 100 * groups[name]["accuracy_ci95"][0]) for i, name in enumerate(names)]
    highs = [max(0.0, 100 * groups[name]["accuracy_ci95"][1] - values[i]) for i, name in enumerate(names)]
    figure, axis = plt.subplots(figsize=(6, 0.5 * len(names) + 1.2), dpi=100)
    colours = ["#4477aa" if name.startswith("source") else "#cc6677" for name in names]
    axis.barh(names, values, xerr=[lows, highs], color=colours, capsize=3)
    for index, name in enumerate(names):
        axis.text(1, index, f"n={groups[name]['items']}", va="center", color="white", fontsize=8)
    axis.set_xlim(0, 100)
    axis.set_xlabel("accuracy (%), 95% CI")
    axis.invert_yaxis()
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
