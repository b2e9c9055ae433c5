"""The copy probe: which tokens it reads, and that an untrained model copies nothing."""

from __future__ import annotations

from codedance_core.config.data import SuiteSpec
from codedance_core.data.suite import make_row
from codedance_core.models.copy_probe import copied_text, copy_accuracy, copy_positions, probe_conversations
from codedance_core.models.copy_texts import COPY_FORMS


def suite_rows(n: int, split: str = "test") -> list[dict]:
    spec = SuiteSpec(n=n, seed=0, split=split)
    return [make_row(spec, index) for index in range(n)]


def rendered(bundle, messages) -> str:
    return bundle.tokenizer.apply_chat_template(
        messages, chat_template=bundle.chat_template, tokenize=False, add_generation_prompt=False
    )


def test_the_probe_reads_the_copy_in_the_reply_not_the_question_in_the_prompt(tiny_bundle):
    tokenizer = tiny_bundle.tokenizer
    for row, form, printed, messages in probe_conversations(suite_rows(2), with_image=False):
        text = rendered(tiny_bundle, messages)
        positions = copy_positions(tokenizer, text, copied_text(row, form, printed))
        ids = tokenizer.encode(text, add_special_tokens=False)
        reply = text.rindex("<|im_start|>assistant")
        copy = tokenizer.decode([ids[i] for i in positions])
        first_line = row["extra_info"]["question"].splitlines()[0]
        expected = {"thought": row["extra_info"]["question"], "code": first_line, "output": printed}[form]
        assert expected in copy and len(copy) <= len(expected) + 2, (form, copy)
        assert len(tokenizer.decode(ids[: positions[0]])) >= reply, "the copy is the reply's, after the prompt"


def test_the_same_seed_gives_the_same_conversations_so_checks_compare():
    rows = suite_rows(3)
    first, again = probe_conversations(rows, with_image=False), probe_conversations(rows, with_image=False)
    assert first == again and [form for _, form, _, _ in first] == list(COPY_FORMS) * 3
    assert probe_conversations(rows, with_image=False, seed=1) != first


def test_an_untrained_model_copies_nothing_with_or_without_the_image(tiny_bundle):
    rows = suite_rows(4)
    for with_image in (False, True):
        shares = copy_accuracy(tiny_bundle, rows, with_image=with_image)
        assert set(shares) == set(COPY_FORMS) and all(share == 0.0 for share in shares.values()), shares
    assert not tiny_bundle.model.training, "the probe leaves the model's mode as it found it"
