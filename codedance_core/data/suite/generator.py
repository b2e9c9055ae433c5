"""The suite's registry and generator: from a `SuiteSpec` to RL rows, deterministically.

Every item is a pure function of (split, family, seed, index): its random stream is
`SeedSequence([split_code, family_code, seed, index])`. Putting the split *in the seed
derivation* (rather than, say, offsetting the seed for test) is what makes train and test
disjoint for every seed: no (seed, index) of one split can reproduce a stream of the other.
Items are independent, so they are rendered in parallel processes and reassembled in index
order; the same spec always gives byte-identical rows.

Rows follow the released RL format (`RL_ARROW_SCHEMA`): `data_source = suite_<family>`,
`ability = <family>`, the gold answer in `reward_model.ground_truth` and `extra_info.answer`,
and everything the generator decided as JSON in `extra_info.generator`.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from codedance_core.chat_format.prompts import PROMPT_VERSION, initial_messages
from codedance_core.config.data import SuiteSpec
from codedance_core.data.images import encode_png
from codedance_core.data.io import ParquetSink
from codedance_core.data.schemas import RL_ARROW_SCHEMA
from codedance_core.data.suite import arithmetic, chart, count, direct, search
from codedance_core.data.suite.task import SuiteTask
from codedance_core.storage import ArtifactRef

FAMILY_GENERATORS: dict[str, Callable[[np.random.Generator, bool], SuiteTask]] = {
    "count": count.generate,
    "search": search.generate,
    "chart": chart.generate,
    "math": arithmetic.generate,
    "direct": direct.generate,
}
# Fixed codes (not list positions), so adding a family never changes existing items.
FAMILY_CODES = {"count": 1, "search": 2, "chart": 3, "math": 4, "direct": 5}
SPLIT_CODES = {"train": 0x7452, "test": 0x5445}
PARALLEL_MIN_ITEMS = 48


def item_rng(split: str, family: str, seed: int, index: int) -> np.random.Generator:
    """The random stream of one item."""
    return np.random.default_rng(np.random.SeedSequence([SPLIT_CODES[split], FAMILY_CODES[family], seed, index]))


def item_family(spec: SuiteSpec, index: int) -> str:
    return spec.families[index % len(spec.families)]


def make_task(spec: SuiteSpec, index: int) -> tuple[SuiteTask, str, str]:
    """The task of item `index`, its family and its difficulty."""
    family = item_family(spec, index)
    rng = item_rng(spec.split, family, spec.seed, index)
    hard = spec.difficulty == "hard" or (spec.difficulty == "mixed" and bool(rng.random() < spec.hard_fraction))
    return FAMILY_GENERATORS[family](rng, hard), family, "hard" if hard else "easy"


def make_row(spec: SuiteSpec, index: int) -> dict[str, Any]:
    """Item `index` of the spec as an RL row."""
    task, family, difficulty = make_task(spec, index)
    generator = {
        "family": family,
        "difficulty": difficulty,
        "split": spec.split,
        "seed": spec.seed,
        "index": index,
        "prompt_version": PROMPT_VERSION,
        "image_size": [task.image.width, task.image.height],
        "options": task.options,
        **task.params,
    }
    return {
        "data_source": f"suite_{family}",
        "prompt": initial_messages(task.question),
        "images": [{"bytes": encode_png(task.image), "path": f"suite_{spec.split}_{spec.seed}_{index:06d}.png"}],
        "ability": family,
        "reward_model": {"style": "rule", "ground_truth": task.answer},
        "extra_info": {
            "split": spec.split,
            "index": index,
            "answer": task.answer,
            "question": task.question,
            "need_tools_kwargs": True,
            # The sandbox's image is the row's first image; a reference, not a second copy of the bytes.
            "tools_kwargs": {"execute_python_code": {"create_kwargs": {"image": "images[0]"}}},
            "family": family,
            "difficulty": difficulty,
            "generator": json.dumps(generator, sort_keys=True, separators=(",", ":")),
        },
    }


def generate_rows(spec: SuiteSpec, workers: int = 1) -> Iterator[dict[str, Any]]:
    """The spec's rows in index order; rendered by `workers` processes when there are enough items."""
    if workers <= 1 or spec.n < PARALLEL_MIN_ITEMS:
        for index in range(spec.n):
            yield make_row(spec, index)
        return
    # spawn, not fork: the parent may hold threads (polars, pyarrow) that fork would copy mid-lock.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(partial(make_row, spec), range(spec.n), chunksize=8)


def write_suite(spec: SuiteSpec, out_uri: str, workers: int = 1, shard_rows: int = 256) -> ArtifactRef:
    """Generate the spec's rows and write them to `out_uri` (any store URI) as one parquet file."""
    with ParquetSink.open(out_uri, RL_ARROW_SCHEMA, row_group_rows=shard_rows) as sink:
        shard: list[dict[str, Any]] = []
        for row in generate_rows(spec, workers):
            shard.append(row)
            if len(shard) == shard_rows:
                sink.write_rows(shard)
                shard = []
        if shard:
            sink.write_rows(shard)
    assert sink.ref is not None
    return sink.ref
