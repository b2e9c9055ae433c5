"""The report's RL section: what each RL arm did step by step, and whether its steps could teach.

Two kinds of figure per step, both from the runs' metrics (results.RL_CURVE_KEYS):
- the held-out curve: greedy accuracy on the first items of the seed's test split, measured before
  the first step (step 0: the tool SFT policy) and every few steps, so a claim about the final
  policy can be read against how it got there;
- the evidence of whether a step could move the policy: the share of sampled groups whose rewards
  differ (only those carry a GRPO gradient), their reward spread, the update's size (gradient norm,
  clipped share of tokens, mean ratio) and the policy's entropy, early steps against late ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codedance_core.experiments.report_plots import mean_by_step, pyplot

Curves = Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]]  # arm -> seed -> per-step points

# (metric, what the table calls it) for the dynamics table, early steps against late ones.
DYNAMICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "sampled accuracy"),
    ("tool_call_rate", "rollouts with a call"),
    ("exec_success_rate", "calls that ran"),
    ("sampling/informative_share", "informative groups"),
    ("sampling/group_reward_std", "reward std in a group"),
    ("grad_norm", "gradient norm"),
    ("clip_frac", "clipped tokens"),
    ("entropy", "entropy"),
)


def rl_curves(meta: Mapping[str, Any]) -> dict[str, dict[str, list[dict[str, float]]]]:
    """The RL arms' per-seed curves that `meta` holds (the flow reads them from the runs' metrics)."""
    return {arm: seeds for arm, seeds in (meta.get("rl_training") or {}).items() if any(seeds.values())}


def window_mean(seeds: Mapping[str, Sequence[Mapping[str, float]]], key: str, first: bool, width: int) -> float | None:
    """`key` averaged over each seed's first (or last) `width` training steps, then over seeds."""
    per_seed = []
    for curve in seeds.values():
        values = [float(p[key]) for p in curve if p.get("step", 0) >= 1 and p.get(key) is not None]
        chosen = values[:width] if first else values[-width:]
        if chosen:
            per_seed.append(sum(chosen) / len(chosen))
    return sum(per_seed) / len(per_seed) if per_seed else None


def rl_training_lines(curves: Curves, titles: Mapping[str, str]) -> list[str]:
    """The markdown of the RL section: the held-out curve table and the dynamics table."""
    if not curves:
        return []
    lines = ["## RL training", ""]
    heldout = {arm: mean_by_step(seeds, "heldout/accuracy") for arm, seeds in curves.items()}
    steps = sorted({step for by_step in heldout.values() for step in by_step})
    if steps:
        lines += ["Held-out accuracy during RL: greedy answers to the first items of each seed's test split (the",
                  "items the claims use), at step 0 (the tool SFT policy) and every few steps; mean over seeds.", "",
                  "| arm | " + " | ".join(f"step {step}" for step in steps) + " |", "| --- |" + " --- |" * len(steps)]
        lines += [f"| {titles.get(arm, arm)} | " + " | ".join(_num(by_step.get(step)) for step in steps) + " |"
                  for arm, by_step in heldout.items()]
        lines.append("")
    longest = max(len([p for p in curve if p.get("step", 0) >= 1]) for seeds in curves.values() for curve in seeds.values())
    width = max(1, longest // 4)
    lines += [f"What the steps could teach: each figure averaged over the first {width} and the last {width} training",
              "steps of each seed, then over seeds (sampled rollouts at the RL temperature). Only groups whose rewards",
              "differ (*informative*) give GRPO a gradient; dynamic sampling draws more prompts to fill a step with them.", "",
              "| arm | " + " | ".join(name for _, name in DYNAMICS) + " |", "| --- |" + " --- |" * len(DYNAMICS)]
    for arm, seeds in curves.items():
        cells = [f"{_num(window_mean(seeds, key, True, width))} → {_num(window_mean(seeds, key, False, width))}"
                 for key, _ in DYNAMICS]
        lines.append(f"| {titles.get(arm, arm)} | " + " | ".join(cells) + " |")
    return [*lines, "", "![RL training](rl_training.png)", ""]


def plot_rl_training(curves: Curves, titles: Mapping[str, str], path: Path) -> Path:
    """Per RL arm: held-out accuracy, sampled accuracy, share of informative groups and share of
    rollouts with a call, by step; a thin line per seed, a thick one for the mean over seeds."""
    plt = pyplot()
    figure, grid = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    panels = (("heldout/accuracy", "held-out accuracy (greedy)"), ("accuracy", "sampled accuracy"),
              ("sampling/informative_share", "share of informative groups"),
              ("tool_call_rate", "share of rollouts with a call"))
    for index, (arm, seeds) in enumerate(curves.items()):
        colour = f"C{index}"
        for axes, (key, _) in zip(grid.flat, panels, strict=True):
            for curve in seeds.values():
                points = [point for point in curve if point.get(key) is not None]
                axes.plot([p["step"] for p in points], [p[key] for p in points], color=colour, alpha=0.3, linewidth=0.8)
            mean = mean_by_step(seeds, key)
            axes.plot(list(mean), list(mean.values()), color=colour, linewidth=2, label=titles.get(arm, arm),
                      marker="o" if key.startswith("heldout/") else None, markersize=3)
    for axes, (_, label) in zip(grid.flat, panels, strict=True):
        axes.set_ylabel(label)
        axes.set_ylim(-0.02, 1.02)
    for axes in grid[1]:
        axes.set_xlabel("RL step")
    grid[0][0].legend(fontsize=7)
    figure.suptitle("RL training (thin: one seed; thick: mean over seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
