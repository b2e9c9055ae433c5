"""A VLMEvalKit-style prediction file of a run, to cross-check our scores with that toolkit.

One tab-separated line per item: `index`, `question`, the options in columns `A`, `B`, ... when
the benchmark has them (as a list, or written into the question as '(A) x (B) y'), `answer` (the gold), `prediction` (the extracted final answer) and `hit`
(1 when scored correct, else 0: an item that failed to load or roll out is a 0, as in our
denominators), then our `status`. With k samples per item the line is the first sample's and
`hit_avg` is the item's avg@k. VLMEvalKit writes xlsx; it reads TSV as well.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codedance_core.agent.items import options_in_question
from codedance_core.evaluation.loaders import OPTION_LETTERS
from codedance_core.evaluation.results import replace_atomically


def prediction_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One dict per item (first sample), columns in VLMEvalKit's order."""
    by_item: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_item.setdefault(str(row["item_id"]), []).append(row)
    width = max((len(_options(row)) for row in rows), default=0)
    several = any(len(samples) > 1 for samples in by_item.values())
    out = []
    for item_id, samples in by_item.items():
        first = min(samples, key=lambda row: int(row["sample_index"]))
        options = _options(first)
        line: dict[str, Any] = {"index": item_id, "question": first.get("question") or ""}
        line.update(
            {
                letter: (options[i] if i < len(options) else "")
                for i, letter in enumerate(OPTION_LETTERS[:width])
            }
        )
        line.update(
            answer=first.get("gold") or "",
            prediction="" if first.get("prediction") is None else str(first["prediction"]),
            hit=1 if float(first.get("acc") or 0.0) >= 0.5 else 0,
            status=first.get("status") or "",
        )
        if several:
            line["hit_avg"] = sum(float(row.get("acc") or 0.0) for row in samples) / len(samples)
        out.append(line)
    return out


def write_predictions(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write the prediction file atomically; returns its path."""
    lines = prediction_rows(rows)
    columns = list(lines[0]) if lines else ["index", "question", "answer", "prediction", "hit", "status"]

    def write(staged: Path) -> None:
        with staged.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(lines)

    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, write)
    return path


def _options(row: Mapping[str, Any]) -> list[str]:
    """The row's options: its own list, else those written into the question as '(A) x (B) y'."""
    return list(row.get("options") or options_in_question(str(row.get("question") or "")) or [])
