"""Statistics of a synthesis run: kept and rejected by reason, turns and tool calls, per family.

Printed as a rich table for people and dumped as JSON for machines (and the tracking run); the
numbers say whether a writer is healthy (a family with many `answer_incorrect` rejections has a
program that measures badly) and what the SFT data teaches (how many turns, how many recoveries).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table


@dataclass
class FamilyStats:
    """Counters of one family."""

    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    turns: Counter = field(default_factory=Counter)
    tool_calls: Counter = field(default_factory=Counter)
    with_failed_call: int = 0
    from_teacher: int = 0

    def to_dict(self) -> dict[str, Any]:
        kept = max(1, self.kept)
        return {
            "kept": self.kept,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected),
            "mean_turns": round(sum(k * v for k, v in self.turns.items()) / kept, 3),
            "mean_tool_calls": round(sum(k * v for k, v in self.tool_calls.items()) / kept, 3),
            "turns_histogram": {str(k): v for k, v in sorted(self.turns.items())},
            "tool_calls_histogram": {str(k): v for k, v in sorted(self.tool_calls.items())},
            "with_failed_call": self.with_failed_call,
            "from_teacher": self.from_teacher,
        }


@dataclass
class SynthesisStats:
    """Counters per family, and the run's totals."""

    families: dict[str, FamilyStats] = field(default_factory=dict)
    seconds: float = 0.0

    def family(self, name: str) -> FamilyStats:
        return self.families.setdefault(name, FamilyStats())

    def record_kept(self, family: str, turns: int, tool_calls: int, failed_calls: int, teacher: bool) -> None:
        stats = self.family(family)
        stats.kept += 1
        stats.turns[turns] += 1
        stats.tool_calls[tool_calls] += 1
        stats.with_failed_call += failed_calls > 0
        stats.from_teacher += teacher

    def record_rejected(self, family: str, reason: str) -> None:
        self.family(family).rejected[reason] += 1

    @property
    def kept(self) -> int:
        return sum(stats.kept for stats in self.families.values())

    @property
    def rejected(self) -> int:
        return sum(sum(stats.rejected.values()) for stats in self.families.values())

    def to_dict(self) -> dict[str, Any]:
        reasons: Counter = Counter()
        for stats in self.families.values():
            reasons.update(stats.rejected)
        return {
            "kept": self.kept,
            "rejected": self.rejected,
            "rejected_by_reason": dict(reasons),
            "seconds": round(self.seconds, 3),
            "families": {name: stats.to_dict() for name, stats in sorted(self.families.items())},
        }

    def table(self) -> Table:
        table = Table("family", "kept", "rejected", "reasons", "turns", "tool calls", "recovered", "teacher",
                      title="trajectory synthesis")
        for name, stats in sorted(self.families.items()):
            row = stats.to_dict()
            reasons = ", ".join(f"{reason} {count}" for reason, count in stats.rejected.most_common())
            table.add_row(name, str(stats.kept), str(row["rejected"]), reasons or "-", f"{row['mean_turns']:.2f}",
                          f"{row['mean_tool_calls']:.2f}", str(stats.with_failed_call), str(stats.from_teacher))
        return table
