"""Which rows the held-out evaluation during RL answers (the evaluation itself: test_grpo.py)."""

from __future__ import annotations

import pytest

from codedance_core.config.data import SuiteSpec
from codedance_core.config.train import GRPOConfig
from codedance_core.data.suite import make_row
from codedance_core.train.grpo_heldout import evaluation_due, heldout_split


def suite_rows(n: int, seed: int = 0) -> list[dict]:
    spec = SuiteSpec(n=n, families=["direct"], difficulty="easy", seed=seed)
    return [make_row(spec, i) for i in range(n)]


def ids(rows: list[dict]) -> list:
    return [row["extra_info"]["index"] for row in rows]


def test_without_evaluation_every_row_trains():
    rows = suite_rows(6)
    assert heldout_split(GRPOConfig(prompts_per_step=2), rows, None) == (rows, [])


def test_given_eval_data_its_first_items_are_held_out_and_training_keeps_every_row():
    rows, held = suite_rows(6), suite_rows(5, seed=9)
    config = GRPOConfig(prompts_per_step=2, eval_every_steps=2, eval_items=3)
    train, heldout = heldout_split(config, rows, held)
    assert train == rows and ids(heldout) == ids(held[:3])


def test_without_eval_data_a_seeded_choice_of_rows_is_held_out_of_training():
    rows = suite_rows(10)
    config = GRPOConfig(prompts_per_step=2, eval_every_steps=2, eval_items=3, seed=4)
    train, heldout = heldout_split(config, rows, None)
    assert len(train) == 7 and len(heldout) == 3
    assert sorted(ids(train) + ids(heldout)) == sorted(ids(rows))
    assert heldout_split(config, rows, None) == (train, heldout)  # the same rows on every run and resume
    with pytest.raises(ValueError, match="lower eval_items or give eval_data"):
        heldout_split(config.model_copy(update={"eval_items": 9}), rows, None)


def test_evaluation_runs_every_n_steps():
    config = GRPOConfig(eval_every_steps=3)
    assert [step for step in range(1, 10) if evaluation_due(config, step)] == [3, 6, 9]
    assert not any(evaluation_due(GRPOConfig(), step) for step in range(1, 10))
