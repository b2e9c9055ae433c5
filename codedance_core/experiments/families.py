"""The suite's task families, and the groups of them that the report and the runs summarise.

Both the report's numbers (`report.py`) and its figures and tables (`report_plots.py`) order
and group results by these names, so they live here, below both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FAMILIES = ("count", "search", "chart", "math", "direct")
VISUAL_FAMILIES = ("count", "search", "chart", "math")
# Groups reported beside the families: every visual family together, and everything.
GROUPS = (*FAMILIES, "visual", "all")


def family_of(data_source: str) -> str:
    """suite_count -> count; any other source keeps its name."""
    return data_source.removeprefix("suite_")


def group_members(records: Sequence[Mapping[str, Any]], group: str) -> list[Mapping[str, Any]]:
    """The records of one group: a family, `visual` (the visual families) or `all`."""
    if group == "all":
        return list(records)
    if group == "visual":
        return [r for r in records if r["family"] in VISUAL_FAMILIES]
    return [r for r in records if r["family"] == group]
