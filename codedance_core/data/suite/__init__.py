"""The procedural visual-task suite: five families (count, search, chart, math, direct), easy and hard.

`write_suite(spec, uri)` writes a deterministic RL-format dataset; `make_row(spec, i)` builds one item.
"""

from codedance_core.data.suite.generator import (
    FAMILY_GENERATORS,
    generate_rows,
    item_rng,
    make_row,
    write_suite,
)

__all__ = ["FAMILY_GENERATORS", "generate_rows", "item_rng", "make_row", "write_suite"]
