"""Copy pretraining of the tiny model: its texts, and that it really trains the model."""

from __future__ import annotations

import torch

from codedance_core.config.data import SuiteSpec
from codedance_core.config.model import TinyModelConfig
from codedance_core.data.suite import make_row
from codedance_core.models import load_model_bundle
from codedance_core.models.pretrain import copy_texts, pretrain
from codedance_core.models.tokenizer import IM_END


def suite_rows(n: int) -> list[dict]:
    spec = SuiteSpec(n=n, seed=0, split="train")
    return [make_row(spec, index) for index in range(n)]


def test_a_copy_text_repeats_the_question_in_the_thought_then_answers(tiny_bundle):
    row = suite_rows(1)[0]
    text = copy_texts([row], tiny_bundle.tokenizer)[0]
    question = row["extra_info"]["question"]
    assert text.startswith("<|im_start|>system\n") and f"<|im_start|>user\n{question}\n\n" in text
    assert f"<think>\n{question}\n</think>\n<answer>{row['extra_info']['answer']}</answer>{IM_END}" in text


def test_pretraining_lowers_the_loss_and_changes_the_weights(tiny_model_dir):
    bundle = load_model_bundle(tiny_model_dir, device="cpu", dtype="float32")  # a private copy to train
    before = {name: p.detach().clone() for name, p in bundle.model.named_parameters()}
    config = TinyModelConfig(pretrain_steps=40, pretrain_batch_size=8, pretrain_learning_rate=3e-3)
    losses = pretrain(bundle.model, bundle.tokenizer, copy_texts(suite_rows(24), bundle.tokenizer), config)
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    changed = [name for name, p in bundle.model.named_parameters() if not torch.equal(p, before[name])]
    assert any("language_model" in name or "embed" in name for name in changed)
    assert not bundle.model.training, "pretrain leaves the model in eval mode"
