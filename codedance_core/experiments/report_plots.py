"""The report's figures and tables, from the aggregated table of `report.aggregate`.

Kept apart from `report.py` so the verdict logic reads on its own; `report.py` uses this module,
never the other way round. matplotlib is imported lazily with the Agg backend (no display on the
machines this runs on), so importing this module costs nothing until a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codedance_core.experiments.families import FAMILIES, GROUPS


def pyplot():
    """matplotlib's pyplot on the file-only backend (reports are written where no display exists)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_by_step(seeds: Mapping[str, Sequence[Mapping[str, float]]], key: str) -> dict[int, float]:
    """`key` at each step, averaged over the seeds that logged it (for the RL figure and table)."""
    values: dict[int, list[float]] = {}
    for curve in seeds.values():
        for point in curve:
            if point.get(key) is not None:
                values.setdefault(int(point["step"]), []).append(float(point[key]))
    return {step: sum(found) / len(found) for step, found in sorted(values.items())}


def plot_accuracy(table: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Grouped bars: accuracy per family, one bar per arm, 95% CI whiskers."""
    plt = pyplot()
    families = [f for f in (*FAMILIES, "visual") if any(f in arm["groups"] for arm in table.values())]
    width = 0.8 / max(1, len(table))
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(families)), 4))
    for index, (name, arm) in enumerate(table.items()):
        xs, heights, errors = [], [], [[], []]
        for position, family in enumerate(families):
            values = arm["groups"].get(family)
            if not values or values["accuracy"] is None:
                continue
            low, high = values["accuracy_ci95"]
            xs.append(position + (index - (len(table) - 1) / 2) * width)
            heights.append(values["accuracy"])
            errors[0].append(max(0.0, values["accuracy"] - low))
            errors[1].append(max(0.0, high - values["accuracy"]))
        axes.bar(xs, heights, width, yerr=errors, capsize=2, label=arm["title"])
    axes.set_xticks(range(len(families)), families)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("accuracy (95% CI)")
    axes.set_title("Held-out accuracy per family")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_tool_calls(table: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Tool calls per item on `direct` and on the visual families, per arm."""
    plt = pyplot()
    names = list(table)
    figure, axes = plt.subplots(figsize=(max(6, 1.4 * len(names)), 4))
    for offset, group in ((-0.2, "direct"), (0.2, "visual")):
        heights = [(table[n]["groups"].get(group) or {}).get("tool_calls_per_item") or 0.0 for n in names]
        axes.bar([i + offset for i in range(len(names))], heights, 0.4, label=group)
    axes.set_xticks(range(len(names)), [table[n]["title"] for n in names], rotation=20, ha="right", fontsize=7)
    axes.set_ylabel("tool calls per item")
    axes.set_title("Tool use: direct vs visual families")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_paired_differences(claims: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """A forest plot: each claim's paired differences (A - B) with their 95% intervals, a line at 0,
    coloured by verdict, so how far each interval sits from 0 is seen at a glance."""
    plt = pyplot()
    rows = [(index, row) for index, claim in enumerate(claims, 1) for row in claim["comparisons"] if row["items"]]
    colours = {"holds": "tab:green", "does not hold": "tab:red", "inconclusive": "tab:gray"}
    figure, axes = plt.subplots(figsize=(8, 1.5 + 0.5 * max(1, len(rows))))
    for y, (index, row) in enumerate(reversed(rows)):
        low, high = row["ci95"]
        colour = colours.get(row["verdict"], "black")
        axes.plot([low, high], [y, y], color=colour, linewidth=2)
        axes.plot([row["difference"]], [y], "o", color=colour)
    axes.axvline(0, color="black", linewidth=0.8, linestyle="--")
    axes.set_yticks(range(len(rows)), [f"{i}. {row['label']}: {row['a']} - {row['b']}" for i, row in reversed(rows)],
                    fontsize=7)
    axes.set_xlabel("paired difference A - B (95% bootstrap CI)")
    axes.set_title("Claims: paired differences\n(green: holds, red: does not hold, grey: inconclusive)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _cell(values: Mapping[str, Any] | None) -> str:
    if not values or values.get("accuracy") is None:
        return "–"
    low, high = values["accuracy_ci95"]
    return f"{values['accuracy']:.2f} [{low:.2f}, {high:.2f}] n={values['items']}"


def _number(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_tables(table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Accuracy per family, tool use, and per-seed accuracy, as markdown lines."""
    groups = [g for g in GROUPS if any(g in arm["groups"] for arm in table.values())]
    lines = ["## Accuracy per family (pooled over seeds, 95% CI)", "",
             "| arm | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for arm in table.values():
        lines.append(f"| {arm['title']} | " + " | ".join(_cell(arm["groups"].get(g)) for g in groups) + " |")
    lines += ["", "## Tool use", "",
              "| arm | tool calls / direct item | tool calls / visual item | code success rate | turns |",
              "|---|---|---|---|---|"]
    for arm in table.values():
        direct, visual, everything = (arm["groups"].get(g) or {} for g in ("direct", "visual", "all"))
        lines.append(
            f"| {arm['title']} | {_number(direct.get('tool_calls_per_item'))} | {_number(visual.get('tool_calls_per_item'))} "
            f"| {_number(everything.get('code_success_rate'))} | {_number(everything.get('turns'))} |"
        )
    lines += ["", "## Accuracy per seed (all items)", "", "| arm | " + " | ".join(f"seed {s}" for s in _seeds(table)) + " |",
              "|---" * (len(_seeds(table)) + 1) + "|"]
    for arm in table.values():
        per_seed = arm["groups"]["all"]["seed_accuracy"]
        lines.append(f"| {arm['title']} | " + " | ".join(_number(per_seed.get(str(s)), 3) for s in _seeds(table)) + " |")
    return lines


def _seeds(table: Mapping[str, Mapping[str, Any]]) -> list[int]:
    return sorted({seed for arm in table.values() for seed in arm["seeds"]})
