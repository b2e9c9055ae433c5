"""The mini's work folder: a changed setting redoes its stage and the later ones, never earlier ones."""

from __future__ import annotations

from pathlib import Path

from codedance_core.experiments.layout import WorkLayout
from codedance_core.experiments.mini import MiniConfig


def layout(tmp_path: Path, *overrides: str, corpus_rows: int = 400) -> WorkLayout:
    return MiniConfig(smoke=True, work_dir=str(tmp_path), overrides=list(overrides), corpus_rows=corpus_rows).layout()


def test_an_rl_change_keeps_the_base_model_and_the_sft_policies(tmp_path: Path) -> None:
    before, after = layout(tmp_path), layout(tmp_path, "grpo.learning_rate=1e-4")
    assert after.base_model() == before.base_model()
    assert after.run_dir(0, "tool_sft", rl=False) == before.run_dir(0, "tool_sft", rl=False)
    assert after.eval_dir(0, "tool_sft", rl=False) == before.eval_dir(0, "tool_sft", rl=False)
    assert after.run_dir(0, "rl_bat", rl=True) != before.run_dir(0, "rl_bat", rl=True)
    assert after.eval_dir(0, "rl_bat", rl=True) != before.eval_dir(0, "rl_bat", rl=True)


def test_an_sft_change_keeps_the_base_model_only(tmp_path: Path) -> None:
    before, after = layout(tmp_path), layout(tmp_path, "sft.epochs=2")
    assert after.base_model() == before.base_model()
    assert after.seed_dir(0) != before.seed_dir(0)


def test_an_evaluation_change_keeps_every_policy(tmp_path: Path) -> None:
    before, after = layout(tmp_path), layout(tmp_path, "evaluation.max_turns=3")
    assert after.run_dir(1, "rl_bat", rl=True) == before.run_dir(1, "rl_bat", rl=True)
    assert after.eval_dir(1, "text_sft", rl=False) != before.eval_dir(1, "text_sft", rl=False)


def test_a_model_or_corpus_change_redoes_everything(tmp_path: Path) -> None:
    before = layout(tmp_path)
    for after in (layout(tmp_path, "tiny_model.pretrain_text_steps=6"), layout(tmp_path, corpus_rows=100)):
        assert after.base_model() != before.base_model()
        assert after.seed_dir(0) != before.seed_dir(0)


def test_seeds_and_arms_have_their_own_folders(tmp_path: Path) -> None:
    work = layout(tmp_path)
    assert work.seed_dir(0) != work.seed_dir(1)
    assert work.run_dir(0, "rl_bat", rl=True) != work.run_dir(0, "rl_no_bat", rl=True)
    assert work.base_model().is_relative_to(tmp_path.resolve())
