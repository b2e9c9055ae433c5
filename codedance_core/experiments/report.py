"""The Mini-CodeDance report: per-family numbers with their uncertainty, the claims, the plots.

Aggregation over seeds pools items: each seed has its own held-out split, so the items of all
seeds together are one larger sample of the task distribution, and accuracy over them gets a
Wilson 95% interval on (correct, items). The per-seed accuracies are listed beside it, so a
reader sees both the pooled estimate and how much seeds disagree.

Claims are judged by paired comparisons (paired.py): within a seed every arm answers the same
held-out items, so two arms are compared item by item, matched by (seed, item id). A comparison
holds when the paired bootstrap 95% interval of the difference excludes 0 on the expected side,
does not hold when it excludes 0 on the other side, and is inconclusive when it includes 0. The
report also states, per comparison, the smallest difference the design could detect and how many
paired items a difference of 0.08 would need.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from codedance_core.evaluation.stats import wilson_interval
from codedance_core.experiments.families import GROUPS, family_of, group_members
from codedance_core.experiments.paired import (
    TARGET_DIFFERENCE,
    Expect,
    match_items,
    paired_comparison,
    verdict,
)
from codedance_core.experiments.report_plots import (
    markdown_tables,
    plot_accuracy,
    plot_paired_differences,
    plot_tool_calls,
)
from codedance_core.experiments.report_rl import plot_rl_training, rl_curves, rl_training_lines


def item_records(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The few fields of each result row that the report needs (kept in each result JSON)."""
    return [
        {
            "item_id": str(row["item_id"]),
            "family": family_of(str(row.get("data_source") or "")),
            "acc": float(row.get("acc") or 0.0),
            "tool_calls": int(row.get("tool_calls") or 0),
            "tool_successes": int(row.get("tool_successes") or 0),
            "turns": int(row.get("turns") or 0),
        }
        for row in rows
    ]


def summarise(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """items, accuracy with its Wilson 95% CI, items with a tool call (and the CI of their share),
    tool calls per item, code success rate, turns."""
    n = len(records)
    correct = sum(float(r["acc"]) for r in records)
    calls = sum(int(r["tool_calls"]) for r in records)
    successes = sum(int(r["tool_successes"]) for r in records)
    calling = sum(1 for r in records if int(r["tool_calls"]) > 0)
    low, high = wilson_interval(correct, n)
    return {
        "items": n,
        "accuracy": correct / n if n else None,
        "accuracy_ci95": [low, high],
        "items_with_calls": calling,
        "items_with_calls_ci95": list(wilson_interval(calling, n)),
        "tool_calls_per_item": calls / n if n else None,
        "code_success_rate": successes / calls if calls else None,
        "turns": sum(int(r["turns"]) for r in records) / n if n else None,
    }


def family_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """`summarise` for each family present, for the visual families together, and for all items
    (`records` as made by `item_records`)."""
    present = {r["family"] for r in records}
    groups = [g for g in GROUPS if g in present or g in ("visual", "all")]
    return {group: summarise(group_members(records, group)) for group in groups}


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per arm: pooled-over-seeds metrics per group, plus each seed's accuracy per group."""
    by_arm: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for result in results:
        by_arm[result["arm"]].append(result)
    table: dict[str, dict[str, Any]] = {}
    for arm, runs in by_arm.items():
        pooled = [record for run in runs for record in run["items"]]
        groups = family_metrics(pooled)
        for group, values in groups.items():
            values["seed_accuracy"] = {
                str(run["seed"]): run["families"].get(group, {}).get("accuracy") for run in runs
            }
        table[arm] = {"title": runs[0].get("title", arm), "seeds": [run["seed"] for run in runs], "groups": groups}
    return table


@dataclass(frozen=True)
class Comparison:
    """One paired comparison inside a claim: arm `a` against arm `b` on `measure` over `group`'s
    items, with the direction the claim expects of a - b (paired.verdict)."""

    label: str
    a: str
    b: str
    group: str
    measure: Literal["accuracy", "called"]  # called: 1 when the item got at least one tool call
    expect: Expect


# The paper's three claims, each as the comparisons that must go its way.
CLAIMS: tuple[tuple[str, tuple[Comparison, ...]], ...] = (
    ("tool SFT beats text-only SFT by a wide margin on the visual families",
     (Comparison("visual accuracy", "tool_sft", "text_sft", "visual", "accuracy", "higher"),)),
    ("RL (GRPO + BAT) improves on tool SFT",
     (Comparison("accuracy on all items", "rl_bat", "tool_sft", "all", "accuracy", "higher"),)),
    ("BAT lowers tool calls on direct items vs RL without BAT, without losing visual accuracy",
     (Comparison("share of direct items with a tool call", "rl_bat", "rl_no_bat", "direct", "called", "lower"),
      Comparison("visual accuracy (no significant loss)", "rl_bat", "rl_no_bat", "visual", "accuracy", "not lower"))),
)


def outcomes(results: Sequence[Mapping[str, Any]], arm: str, group: str, measure: str) -> dict[tuple[str, str], float]:
    """One arm's per-item `measure` on `group`, keyed by (seed, item id): item ids restart in every
    seed's held-out split, so only the pair names an item. Refuses duplicate keys (an arm run twice
    for a seed, or an item listed twice), which would otherwise silently shadow one another."""
    found: dict[tuple[str, str], float] = {}
    for run in (r for r in results if r["arm"] == arm):
        for record in group_members(run["items"], group):
            key = (str(run["seed"]), str(record["item_id"]))
            if key in found:
                raise ValueError(f"arm {arm} has item {key[1]} of seed {key[0]} twice")
            found[key] = float(int(record["tool_calls"]) > 0) if measure == "called" else float(record["acc"])
    return found


def compare(results: Sequence[Mapping[str, Any]], comparison: Comparison) -> dict[str, Any]:
    """The paired comparison of `comparison.a` against `comparison.b` on the items both answered
    (matched by seed and item id; arms that answered different items are refused)."""
    a = outcomes(results, comparison.a, comparison.group, comparison.measure)
    b = outcomes(results, comparison.b, comparison.group, comparison.measure)
    keys, a_values, b_values = match_items(a, b, f"{comparison.a} and {comparison.b} ({comparison.group} items)")
    row: dict[str, Any] = {**asdict(comparison), "a_mean": None, "b_mean": None}
    if not keys:
        return {**row, "items": 0, "verdict": "inconclusive"}
    paired = paired_comparison(a_values, b_values, [seed for seed, _ in keys])
    return {**row, **paired.to_dict(), "a_mean": float(a_values.mean()), "b_mean": float(b_values.mean()),
            "verdict": verdict(paired.ci95, comparison.expect)}


def judge_claims(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The paper's claims, each with a verdict, its paired comparisons and a line of numbers; a claim
    whose arms were not run is skipped. A claim holds when every comparison holds, does not hold
    when any does not, and is inconclusive otherwise."""
    titles = {r["arm"]: r.get("title", r["arm"]) for r in results}
    claims = []
    for claim, comparisons in CLAIMS:
        if not all({c.a, c.b} <= titles.keys() for c in comparisons):
            continue
        rows = [compare(results, c) for c in comparisons]
        verdicts = {row["verdict"] for row in rows}
        overall = "does not hold" if "does not hold" in verdicts else "holds" if verdicts == {"holds"} else "inconclusive"
        numbers = "; ".join(_comparison_numbers(row, titles) for row in rows)
        claims.append({"claim": claim, "verdict": overall, "numbers": numbers, "comparisons": rows})
    return claims


def _comparison_numbers(row: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    head = f"{row['label']}: {titles[row['a']]} vs {titles[row['b']]}"
    if not row["items"]:
        return f"{head}: no items"
    low, high = row["ci95"]
    return (f"{head} {row['a_mean']:.3f} vs {row['b_mean']:.3f}, difference {row['difference']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] over {row['items']} paired items, McNemar p={row['p_value']:.2g}")


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def write_report(results: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write README.md, summary.json and the plots into `out_dir`; returns the markdown's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A rerun reuses saved results: its own wall time and commit are not the ones that made them.
    meta = {**meta, "result_seconds": sum(r.get("seconds") or 0.0 for r in results),
            "result_commits": sorted({r["commit"] for r in results if r.get("commit")})}
    table = aggregate(results)
    claims = judge_claims(results)
    plot_accuracy(table, out / "accuracy_by_family.png")
    plot_paired_differences(claims, out / "paired_differences.png")
    plot_tool_calls(table, out / "tool_calls.png")
    curves = rl_curves(meta)
    if curves:
        plot_rl_training(curves, {name: arm["title"] for name, arm in table.items()}, out / "rl_training.png")
    (out / "summary.json").write_text(json.dumps({"meta": dict(meta), "arms": table, "claims": claims}, indent=1))
    path = out / "README.md"
    path.write_text(render_markdown(table, claims, meta))
    return path


def render_markdown(table: Mapping[str, Mapping[str, Any]], claims: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in meta.get("versions", {}).items())
    lines = [
        "# Mini-CodeDance: the paper's claims in miniature",
        "",
        "Generated by `codedance experiment mini`; do not edit by hand." + (" **Smoke run: the numbers mean nothing.**" if meta.get("smoke") else ""),
        "",
        f"- command: `{meta.get('command', '')}`" + (f" at commit `{meta['commit']}`" if meta.get("commit") else "")
        + _made_at(meta),
        f"- seeds: {', '.join(str(s) for s in meta.get('seeds', []))}; arms: {', '.join(meta.get('arms', []))}",
        f"- config digest: `{meta.get('config_digest', '')}` (profile `{meta.get('profile', '')}`, overrides: `{' '.join(meta.get('overrides', []))}`)",
        f"- versions: {versions}",
        _wall_time(meta),
        "",
        "Aggregation: items of all seeds are pooled (each seed has its own held-out split); accuracy is the",
        "mean over pooled items with a Wilson 95% interval; per-seed accuracies are listed to show the spread.",
        "",
        *_copy_probe_lines(meta.get("copy_probe")),
        *_claim_lines(claims, len({seed for arm in table.values() for seed in arm["seeds"]})),
        *markdown_tables(table), "", "## Plots", "",
        "![accuracy per family](accuracy_by_family.png)", "", "![tool calls per item](tool_calls.png)", "",
        *rl_training_lines(rl_curves(meta), {name: arm["title"] for name, arm in table.items()}),
    ]
    return "\n".join(lines)


def _claim_lines(claims: Sequence[Mapping[str, Any]], seeds: int) -> list[str]:
    """The verdicts, how they are reached, and each comparison's numbers with its power."""
    lines = [
        "## Claims", "",
        "Every claim compares arms on the same held-out items, matched by (seed, item id). A - B is the mean",
        "per-item difference; its 95% interval is a paired bootstrap (10,000 resamples of items within each seed),",
        "and McNemar's exact test on the discordant pairs gives its p-value. A comparison *holds* when the interval",
        "excludes 0 on the side the claim expects, *does not hold* when it excludes 0 on the other side, and is",
        "*inconclusive* when it includes 0; a no-loss comparison fails only when its interval lies below 0. A claim",
        "holds when all its comparisons hold. *Detectable* is the smallest difference these pairs detect with 80%",
        "power at alpha 0.05 (two-sided), given the observed share of discordant pairs; the last column is how many",
        f"paired items a difference of {TARGET_DIFFERENCE} needs at that share (in all, and per seed). Both use the normal",
        "approximation for McNemar's test (Connor 1987), optimistic when few pairs disagree; n/a: no difference",
        "that large is possible, as a difference never exceeds the share of pairs that disagree.", "",
    ]
    lines += [f"{index}. **{claim['claim']}**: {claim['verdict']}." for index, claim in enumerate(claims, 1)]
    header = ("| claim | A vs B | pairs | A | B | A - B [95% CI] | discordant (A/B better) | McNemar p | detectable "
              f"| pairs for {TARGET_DIFFERENCE} | verdict |")
    lines += ["", header, "|---" * 11 + "|"]
    for index, claim in enumerate(claims, 1):
        for row in claim["comparisons"]:
            lines.append(f"| {index} | {row['label']}: {row['a']} vs {row['b']} | " + _comparison_cells(row, seeds) + " |")
    return [*lines, "", "![paired differences](paired_differences.png)", ""]


def _comparison_cells(row: Mapping[str, Any], seeds: int) -> str:
    if not row["items"]:
        return " | ".join(["0", "–", "–", "–", "–", "–", "–", "–", row["verdict"]])
    low, high = row["ci95"]
    needed = row["items_needed"]
    per_seed = f"{needed} ({math.ceil(needed / max(1, seeds))} per seed)" if needed else "n/a"
    return " | ".join([
        str(row["items"]), f"{row['a_mean']:.3f}", f"{row['b_mean']:.3f}",
        f"{row['difference']:+.3f} [{low:+.3f}, {high:+.3f}]", f"{row['a_better']}/{row['b_better']}",
        f"{row['p_value']:.2g}", _num(row["detectable"], 3), per_seed, f"**{row['verdict']}**",
    ])


def _made_at(meta: Mapping[str, Any]) -> str:
    commits = meta.get("result_commits") or []
    if not commits or commits == [meta.get("commit")]:
        return ""
    return "; its results were made at " + ", ".join(f"`{commit}`" for commit in commits)


def _wall_time(meta: Mapping[str, Any]) -> str:
    if meta.get("seconds") is None:
        return "- wall time: n/a"
    line = f"- wall time: {meta['seconds'] / 60:.1f} min"
    made = meta.get("result_seconds")
    if made and abs(made - meta["seconds"]) > 0.05 * meta["seconds"]:
        line += f" (reusing saved results, which took {made / 60:.1f} min to make, base model included)"
    return line


def _copy_probe_lines(record: Mapping[str, Any] | None) -> list[str]:
    """The base model's copy probe (models/copy_probe.py): when its pretraining stopped, and how
    well each form copies, since every arm's scripts and answers depend on it."""
    if not record:
        return []
    forms = [form for form in record.get("with_image", {})]
    passed, target, steps = record.get("passed_at"), record.get("target"), record.get("text_steps")
    if target is None:
        stop = f"ran its {steps} steps unchecked"
    elif passed:
        stop = f"ended after {passed} steps, when the gating forms passed {target}"
    else:
        stop = f"did not reach {target} in its {steps} steps"
    lines = ["## Base model: copy probe", "",
             f"The text phase of pretraining {stop}. Share of held-out probe conversations copied exactly, teacher-forced:", "",
             "| after step | " + " | ".join(forms) + " |", "| --- |" + " --- |" * len(forms)]
    for check in record.get("checks", []):
        lines.append(f"| {check['step']} | " + " | ".join(f"{check.get(form, 0):.2f}" for form in forms) + " |")
    lines.append("| end, with the image | " + " | ".join(f"{record['with_image'][form]:.2f}" for form in forms) + " |")
    return [*lines, ""]
