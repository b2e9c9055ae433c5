"""The copy probe: does the tiny model repeat, exactly, what its replies have to copy?

Copying is what the tiny policy needs from pretraining (models/pretrain.py): the question into a
thought or a script's opening, and a tool's printed value into the answer. It forms as a phase
change whose step depends on the random draw: three bases pretrained for the same number of steps
copied the question's slots 1.00, 0.96 and 0.68 of the time on real trajectories. So pretraining
checks this probe as it goes and stops once the forms it needs copy (`pretrain`), instead of hoping a
fixed step count was enough.

For each held-out row and each copy form, the probe builds the pretraining's conversation (with
its random filler and printout, from a fixed seed, so every check sees the same set) and reads the
model's greedy next token at every token of the copied text, teacher-forced. A conversation counts
as copied when all of them are right: one wrong colour or digit is a wrong script or answer. The
copied text is the question (form "thought"), the question's first line in the script's string
(form "code"), and the printed value as the answer (form "output").
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from codedance_core.models.copy_texts import (
    COPY_FORMS,
    FILLER,
    copy_conversation,
    random_earlier_lines,
    random_printout,
    row_image,
)


def copied_text(row: dict[str, Any], form: str, printed: str) -> str:
    """The text a form's reply copies, as it appears (last) in the rendered conversation."""
    question = row["extra_info"]["question"]
    if form == "thought":
        return question
    if form == "code":
        return question.splitlines()[0]
    return printed  # its last occurrence is the one inside <answer>, at the end of the reply


def copy_positions(tokenizer: Any, text: str, copied: str) -> list[int]:
    """Indices of the tokens of `text` that overlap the last occurrence of `copied` in it."""
    start = text.rindex(copied)
    end = start + len(copied)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [i for i, (left, right) in enumerate(offsets) if left < end and right > start]


def probe_conversations(
    rows: Sequence[dict[str, Any]], with_image: bool, seed: int = 0
) -> list[tuple[dict, str, str, list[dict]]]:
    """(row, form, printed, messages) for every row and form, with the pretraining's random filler
    and printouts drawn from `seed`, so that repeated checks see the same conversations."""
    rng = random.Random(seed)
    conversations = []
    for row in rows:
        for form in COPY_FORMS:
            filler = " ".join(rng.choices(FILLER, k=rng.randint(0, 6)))
            printed, earlier = random_printout(rng), random_earlier_lines(rng)
            conversations.append((row, form, printed, copy_conversation(row, with_image, form, filler, printed, earlier)))
    return conversations


@torch.no_grad()
def copy_accuracy(bundle: Any, rows: Sequence[dict[str, Any]], with_image: bool = False, seed: int = 0) -> dict[str, float]:
    """The share of `rows` whose copy each form's reply makes exactly, teacher-forced (see the
    module's docstring), keyed by form; with or without the rows' images in the prompt."""
    tokenizer = bundle.tokenizer
    was_training = bundle.model.training
    bundle.model.eval()
    copied = {form: 0 for form in COPY_FORMS}
    total = {form: 0 for form in COPY_FORMS}
    for row, form, printed, messages in probe_conversations(rows, with_image, seed):
        images = [row_image(row)] if with_image else []
        prompt = bundle.encode_messages(messages, images, add_generation_prompt=False)
        text = tokenizer.apply_chat_template(
            messages, chat_template=bundle.chat_template, tokenize=False, add_generation_prompt=False
        )
        # The copy comes after the image, so its tokens moved by the expanded pads.
        shift = len(prompt.token_ids) - len(tokenizer.encode(text, add_special_tokens=False))
        positions = [i + shift for i in copy_positions(tokenizer, text, copied_text(row, form, printed))]
        if form == "thought":
            # After a random number of filler sentences, the first word is a guess whether the
            # filler goes on, not a copy (the SFT thought before a script is one fixed sentence).
            positions = positions[1:]
        logits = bundle.model(**bundle.model_inputs([prompt])).logits[0]
        predicted = logits[[p - 1 for p in positions]].argmax(-1).tolist()
        copied[form] += predicted == [prompt.token_ids[p] for p in positions]
        total[form] += 1
    bundle.model.train(was_training)
    return {form: copied[form] / max(1, total[form]) for form in COPY_FORMS}
