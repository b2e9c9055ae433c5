"""The Mini-CodeDance report: per-family numbers with their uncertainty, the claims, the plots.

Aggregation over seeds pools items: each seed has its own held-out split, so the items of all
seeds together are one larger sample of the task distribution, and accuracy over them gets a
Wilson 95% interval on (correct, items). The per-seed accuracies are listed beside it, so a
reader sees both the pooled estimate and how much seeds disagree.

A claim is judged with a deliberately simple, conservative rule, stated in the report: a
difference "holds" when its direction is right and the two 95% intervals do not overlap;
"inconclusive" when the direction is right but the intervals overlap; otherwise "does not hold".
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codedance_core.evaluation.stats import wilson_interval
from codedance_core.experiments.families import GROUPS, family_of, group_members
from codedance_core.experiments.report_plots import (
    markdown_tables,
    mean_by_step,
    plot_accuracy,
    plot_rl_training,
    plot_tool_calls,
)


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


def compare(better: Mapping[str, Any], worse: Mapping[str, Any]) -> str:
    """'holds', 'inconclusive' or 'does not hold' for the claim better.accuracy > worse.accuracy."""
    if better["accuracy"] is None or worse["accuracy"] is None or better["accuracy"] <= worse["accuracy"]:
        return "does not hold"
    return "holds" if better["accuracy_ci95"][0] > worse["accuracy_ci95"][1] else "inconclusive"


def judge_claims(table: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """The paper's three claims, each with a verdict and the numbers behind it (arms absent: skipped)."""
    claims = []

    def group(arm: str, name: str) -> dict[str, Any]:
        return table[arm]["groups"].get(name) or summarise([])

    if {"tool_sft", "text_sft"} <= table.keys():
        tool, text = group("tool_sft", "visual"), group("text_sft", "visual")
        claims.append({
            "claim": "tool SFT beats text-only SFT by a wide margin on the visual families",
            "verdict": compare(tool, text),
            "numbers": f"visual accuracy: tool SFT {_acc(tool)} vs text-only SFT {_acc(text)}",
        })
    if {"rl_bat", "tool_sft"} <= table.keys():
        rl, sft = group("rl_bat", "all"), group("tool_sft", "all")
        claims.append({
            "claim": "RL (GRPO + BAT) improves on tool SFT",
            "verdict": compare(rl, sft),
            "numbers": f"accuracy on all items: RL (BAT) {_acc(rl)} vs tool SFT {_acc(sft)}",
        })
    if {"rl_bat", "rl_no_bat"} <= table.keys():
        claims.append(_bat_claim(group("rl_bat", "direct"), group("rl_no_bat", "direct"),
                                 group("rl_bat", "visual"), group("rl_no_bat", "visual")))
    return claims


def _bat_claim(bat_direct: dict, plain_direct: dict, bat_visual: dict, plain_visual: dict) -> dict[str, str]:
    """Fewer direct items with a tool call, and visual accuracy not significantly lower: 'holds' when
    the share of direct items with a call is significantly lower with BAT (as `compare` judges
    accuracy), 'inconclusive' when it is lower but the intervals overlap."""
    calls_bat, calls_plain = bat_direct["tool_calls_per_item"], plain_direct["tool_calls_per_item"]
    fewer_calls = calls_bat is not None and calls_plain is not None and calls_bat < calls_plain
    significant = fewer_calls and bat_direct["items_with_calls_ci95"][1] < plain_direct["items_with_calls_ci95"][0]
    visual_lost = compare(plain_visual, bat_visual) == "holds"
    verdict = "does not hold" if not fewer_calls or visual_lost else "holds" if significant else "inconclusive"
    return {
        "claim": "BAT lowers tool calls on direct items vs RL without BAT, without losing visual accuracy",
        "verdict": verdict,
        "numbers": f"tool calls per direct item: BAT {_num(calls_bat)} vs no BAT {_num(calls_plain)} "
        f"(direct items with a call: {bat_direct['items_with_calls']}/{bat_direct['items']} vs "
        f"{plain_direct['items_with_calls']}/{plain_direct['items']}); "
        f"visual accuracy: BAT {_acc(bat_visual)} vs no BAT {_acc(plain_visual)}"
        + (" (significantly lower with BAT)" if visual_lost else ""),
    }


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _acc(values: Mapping[str, Any]) -> str:
    if values.get("accuracy") is None:
        return "n/a (no items)"
    low, high = values["accuracy_ci95"]
    return f"{values['accuracy']:.3f} [{low:.3f}, {high:.3f}] (n={values['items']})"


def write_report(results: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write README.md, summary.json and the plots into `out_dir`; returns the markdown's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A rerun reuses saved results: its own wall time and commit are not the ones that made them.
    meta = {**meta, "result_seconds": sum(r.get("seconds") or 0.0 for r in results),
            "result_commits": sorted({r["commit"] for r in results if r.get("commit")})}
    table = aggregate(results)
    claims = judge_claims(table)
    plot_accuracy(table, out / "accuracy_by_family.png")
    plot_tool_calls(table, out / "tool_calls.png")
    curves = rl_curves(meta)
    if curves:
        plot_rl_training(curves, {name: arm["title"] for name, arm in table.items()}, out / "rl_training.png")
    (out / "summary.json").write_text(json.dumps({"meta": dict(meta), "arms": table, "claims": claims}, indent=1))
    path = out / "README.md"
    path.write_text(render_markdown(table, claims, meta))
    return path


def render_markdown(table: Mapping[str, Mapping[str, Any]], claims: Sequence[Mapping[str, str]], meta: Mapping[str, Any]) -> str:
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
        "A claim *holds* when the difference has the right direction and the two 95% intervals do not overlap;",
        "*inconclusive* when the direction is right but they overlap; otherwise it *does not hold*.",
        "",
        *_copy_probe_lines(meta.get("copy_probe")),
        "## Claims",
        "",
    ]
    for claim in claims:
        lines += [f"- **{claim['claim']}**: {claim['verdict']}. {claim['numbers']}."]
    lines += ["", *markdown_tables(table), "", "## Plots", "",
              "![accuracy per family](accuracy_by_family.png)", "", "![tool calls per item](tool_calls.png)", "",
              *_rl_training_lines(rl_curves(meta), table)]
    return "\n".join(lines)


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


def rl_curves(meta: Mapping[str, Any]) -> dict[str, dict[str, list[dict[str, float]]]]:
    """The RL arms' per-seed training curves that `meta` holds (mini.run_mini reads them from the runs)."""
    return {arm: seeds for arm, seeds in (meta.get("rl_training") or {}).items() if any(seeds.values())}


def _rl_training_lines(curves: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]], table: Mapping[str, Any]) -> list[str]:
    if not curves:
        return []
    means = {arm: mean_by_step(seeds, "accuracy") for arm, seeds in curves.items()}
    steps = sorted({step for by_step in means.values() for step in by_step})
    lines = ["## RL training", "",
             "Accuracy of the training rollouts by step (sampled at the RL temperature, so not the greedy",
             "held-out accuracy above), mean over seeds; each step samples new prompts from the train split.", "",
             "| arm | " + " | ".join(str(step) for step in steps) + " |", "| --- |" + " --- |" * len(steps)]
    for arm, by_step in means.items():
        title = table.get(arm, {}).get("title", arm)
        lines.append(f"| {title} | " + " | ".join(_num(by_step.get(step)) for step in steps) + " |")
    return [*lines, "", "![RL training](rl_training.png)", ""]


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
