"""Task families and report groups: what a result row's source is filed under."""

from __future__ import annotations

from codedance_core.experiments.families import GROUPS, VISUAL_FAMILIES, family_of, group_members


def test_a_suite_source_is_filed_under_its_family_and_others_keep_their_name() -> None:
    assert family_of("suite_count") == "count"
    assert family_of("vstar") == "vstar"


def test_groups_select_one_family_the_visual_ones_or_everything() -> None:
    records = [{"family": "count"}, {"family": "chart"}, {"family": "direct"}]
    assert group_members(records, "chart") == [{"family": "chart"}]
    assert group_members(records, "visual") == [{"family": "count"}, {"family": "chart"}]
    assert group_members(records, "all") == records
    assert "direct" not in VISUAL_FAMILIES and GROUPS[-2:] == ("visual", "all")
