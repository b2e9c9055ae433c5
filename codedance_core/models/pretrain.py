"""A short pretraining of the tiny model, meant to make it arrive at SFT able to copy.

A real policy starts from a pretrained checkpoint that can already repeat what it read. A
random-weight model cannot, and SFT on a few hundred trajectories does not teach it. Measured on
the tiny profile: after SFT, the model's next token after "The note itself says the kite is" had
the same distribution whatever colour the note named. It wrote the template and made up the slot
(a count of the wrong colour, a note's wrong colour).

So the tiny model is pretrained for `TinyModelConfig.pretrain_steps` on suite items in the
policy's own chat format, image included (system prompt, image, question, instruction). Each
item is answered by a thought that repeats the question, then the answer; only that reply
carries loss. What was measured on the copy probe:
- Pretrained on the bare question, the model copied it. With the system prompt and the
  instruction between question and thought, it copied 2 colours of 3. Once 144 image tokens
  stood in the prompt, it copied none; hence the image in every prompt here.
- It still does not copy in the full format. After 300 steps, with or without images, with or
  without a random-sequence copy task first, the thought's template tokens were right (teacher-
  forced accuracy 0.85), but its slots were not: "red shapes" came back "orange shapes".
- Copying a slot needs induction heads: attend to the earlier occurrence of the current token and
  repeat what followed it. They did not form in 1000 steps of a pure induction task. At the test
  fixtures' init of 0.2 even plain positional copying did not form (see `EXPERIMENT_OVERRIDES`).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from PIL import Image

from codedance_core.agent.messages import to_model_messages
from codedance_core.agent.prompts import initial_messages
from codedance_core.config.model import TinyModelConfig
from codedance_core.models.inputs import EncodedPrompt
from codedance_core.models.tokenizer import IM_START

IGNORE_INDEX = -100


def copy_conversation(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A suite row as the policy sees it, answered by a thought that repeats the question."""
    extra = row["extra_info"]
    question, answer = extra["question"], extra["answer"]
    reply = f"<think>\n{question}\n</think>\n<answer>{answer}</answer>"
    return to_model_messages([*initial_messages(question), {"role": "assistant", "content": reply}])


def row_image(row: dict[str, Any]) -> Image.Image:
    """The row's (first) image, decoded."""
    return Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")


def copy_prompts(rows: Iterable[dict[str, Any]], bundle: Any) -> list[EncodedPrompt]:
    """Each row's copy conversation encoded with its image (image pads expanded)."""
    return [
        bundle.encode_messages(copy_conversation(row), [row_image(row)], add_generation_prompt=False)
        for row in rows
    ]


def pretrain(bundle: Any, rows: list[dict[str, Any]], config: TinyModelConfig) -> list[float]:
    """Train `bundle.model` in place as a causal LM on the rows' copy conversations, images in the
    prompt; returns the loss of every step. Only the reply carries loss, as in SFT: on the whole
    conversation the constant system prompt and the unpredictable question outweighed the few
    slot tokens where copying pays, and the model learnt the template instead.

    Rows are encoded batch by batch (decoding a 672 px PNG and tokenizing a conversation take a few
    ms), so a pretraining over thousands of items never holds their pixels all at once.
    """
    model = bundle.model
    reply_start = bundle.tokenizer.encode(f"{IM_START}assistant\n", add_special_tokens=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.pretrain_learning_rate, weight_decay=0.01)
    rng = random.Random(config.seed)
    warmup = max(1, config.pretrain_steps // 20)
    losses: list[float] = []
    model.train()
    for step in range(config.pretrain_steps):
        for group in optimizer.param_groups:  # linear warmup, then cosine to zero
            group["lr"] = config.pretrain_learning_rate * min(1.0, (step + 1) / warmup) * (
                0.5 * (1 + math.cos(math.pi * step / config.pretrain_steps))
            )
        batch = rng.sample(rows, min(config.pretrain_batch_size, len(rows)))
        prompts = copy_prompts(batch, bundle)
        inputs = bundle.model_inputs(prompts)
        loss = model(**inputs, labels=reply_labels(inputs["input_ids"], prompts, reply_start)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def reply_labels(input_ids: torch.Tensor, prompts: Sequence[EncodedPrompt], reply_start: list[int]) -> torch.Tensor:
    """Labels for left-padded `input_ids`: each row's last reply (after its last `reply_start`)."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    width = input_ids.shape[1]
    for row, prompt in enumerate(prompts):
        ids = prompt.token_ids
        start = max(i for i in range(len(ids) - len(reply_start) + 1) if ids[i : i + len(reply_start)] == reply_start)
        offset = width - len(ids) + start + len(reply_start)
        labels[row, offset:] = input_ids[row, offset:]
    return labels
