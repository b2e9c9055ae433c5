"""Copy pretraining of the tiny model: its conversations, its labels, and that it really trains."""

from __future__ import annotations

import json
import random

import torch

from codedance_core.config.data import SuiteSpec
from codedance_core.config.model import TinyModelConfig
from codedance_core.data.suite import make_row
from codedance_core.models import load_model_bundle
from codedance_core.models.copy_texts import COPY_FORMS, copy_conversation
from codedance_core.models.pretrain import (
    IGNORE_INDEX,
    PROBE_FILE,
    copy_prompts,
    pretrain,
    reply_labels,
    train_phase,
)
from codedance_core.models.tokenizer import IM_END, IM_START


def suite_rows(n: int) -> list[dict]:
    spec = SuiteSpec(n=n, seed=0, split="train")
    return [make_row(spec, index) for index in range(n)]


def test_a_copy_conversation_has_the_image_and_a_thought_that_repeats_the_question(tiny_bundle):
    row = suite_rows(1)[0]
    prompt = copy_prompts([row], tiny_bundle)[0]
    text = tiny_bundle.tokenizer.decode(prompt.token_ids)
    question = row["extra_info"]["question"]
    assert len(prompt.images) == 1 and prompt.token_ids.count(tiny_bundle.image_token_id) > 1
    assert text.startswith(f"{IM_START}system\n") and f"{question}\n\n" in text
    assert f"<think>\n{question}\n</think>\n<answer>{row['extra_info']['answer']}</answer>{IM_END}" in text


def test_the_first_phase_leaves_the_image_out(tiny_bundle):
    row = suite_rows(1)[0]
    prompt = copy_prompts([row], tiny_bundle, with_image=False)[0]
    text = tiny_bundle.tokenizer.decode(prompt.token_ids)
    assert prompt.images == [] and tiny_bundle.image_token_id not in prompt.token_ids
    assert f"<think>\n{row['extra_info']['question']}\n</think>" in text


def test_the_output_form_answers_with_the_last_value_the_tool_printed(tiny_bundle):
    row = suite_rows(1)[0]
    messages = copy_conversation(
        row, with_image=False, form="output", filler="I look at the question first.", printed="7", earlier="marks: 3\n"
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    text = tiny_bundle.tokenizer.decode(tiny_bundle.encode_messages(messages, [], add_generation_prompt=False).token_ids)
    assert "question = " + repr(row["extra_info"]["question"].splitlines()[0]) in text
    assert "stdout:\nmarks: 3\ncount: 7" in text and text.rstrip().endswith("The code printed 7.\n</think>\n<answer>7</answer><|im_end|>")


def test_only_the_reply_carries_loss(tiny_bundle):
    prompts = copy_prompts(suite_rows(3), tiny_bundle)
    inputs = tiny_bundle.model_inputs(prompts)
    reply_start = tiny_bundle.tokenizer.encode(f"{IM_START}assistant\n", add_special_tokens=False)
    labels = reply_labels(inputs["input_ids"], prompts, reply_start)
    for row, prompt in enumerate(prompts):
        kept = labels[row][labels[row] != IGNORE_INDEX].tolist()
        assert tiny_bundle.tokenizer.decode(kept).startswith("<think>\n")
        assert kept == prompt.token_ids[-len(kept) :], "the labels are the reply's own ids, to the end"


def test_pretraining_lowers_the_loss_and_changes_the_weights(tiny_model_dir):
    bundle = load_model_bundle(tiny_model_dir, device="cpu", dtype="float32")  # a private copy to train
    before = {name: p.detach().clone() for name, p in bundle.model.named_parameters()}
    config = TinyModelConfig(pretrain_text_steps=20, pretrain_steps=10, pretrain_batch_size=4)
    losses = pretrain(bundle, suite_rows(12), config).losses
    assert len(losses) == 30, "20 steps without the image, then 10 with it"
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    changed = [name for name, p in bundle.model.named_parameters() if not torch.equal(p, before[name])]
    assert any("language_model" in name or "embed" in name for name in changed)
    assert not bundle.model.training, "pretrain leaves the model in eval mode"


def test_a_phase_ends_where_its_check_says_so(tiny_model_dir):
    bundle = load_model_bundle(tiny_model_dir, device="cpu", dtype="float32")
    config = TinyModelConfig(pretrain_batch_size=2)
    asked = []

    def check(step: int) -> bool:
        asked.append(step)
        return step == 6

    losses = train_phase(bundle, suite_rows(4), 20, 1e-3, config, random.Random(0), False, check=check, check_every=3)
    assert asked == [3, 6] and len(losses) == 6


def test_pretraining_checks_the_copy_probe_and_records_it_beside_the_model(tiny_model_dir, tmp_path):
    bundle = load_model_bundle(tiny_model_dir, device="cpu", dtype="float32")
    # Ten steps teach no copying, so the probe never passes: the phase runs to its cap, checked.
    config = TinyModelConfig(
        pretrain_text_steps=10, pretrain_steps=2, pretrain_batch_size=2, pretrain_probe_every=4, pretrain_probe_target=1.0
    )
    record = pretrain(bundle, suite_rows(6), config, probe_rows=suite_rows(2)[:2])
    assert [check["step"] for check in record.checks] == [4, 8, 10] and record.passed_at is None
    assert len(record.losses) == 12 and set(record.with_image) == set(COPY_FORMS)
    saved = json.loads(record.save(tmp_path).read_text())
    assert (tmp_path / PROBE_FILE).exists() and saved["checks"] == record.checks and saved["text_steps"] == 10
    assert saved["target"] == 1.0 and "losses" not in saved
