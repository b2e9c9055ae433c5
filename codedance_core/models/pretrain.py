"""A short pretraining of the tiny model, meant to make it arrive at SFT able to copy.

A real policy starts from a pretrained checkpoint that can already repeat what it read. A
random-weight model cannot, and SFT on a few hundred trajectories does not teach it. Measured on
the tiny profile: after SFT, the model's next token after "The note itself says the kite is" had
the same distribution whatever colour the note named. It wrote the template and made up the slot
(a count of the wrong colour, a note's wrong colour).

So the tiny model is pretrained on suite items in the policy's own chat format (system prompt,
image, question, instruction), each answered by a thought that repeats the question, then the
answer; only that reply carries loss. It runs in two phases, because of what the copy probe
measured (teacher-forced accuracy on the colour and kind words of 40 held-out count items'
thoughts, 2 layers of width 128, init 0.02, batch 8):
- With the image in every prompt from the start, the slots stayed at 0.55-0.65 after 800 steps
  at lr 3e-3: the template was learnt, the slots were guessed ("red shapes" came back "orange
  shapes"). 144 image tokens dilute the attention that copying has to learn.
- Without the image, the same conversations were copied exactly (1.00) after 300 of 600 steps
  (lr 3e-3, cosine), 0.15 s a step. The change is a phase change: at lr 1e-3, or with the
  first 400 steps of an 800-step schedule, only the colours were copied by then.
- That model copied 0.78 of the slots with the image in the prompt, never having seen one, and
  1.00 after 50 more steps with the image at lr 1e-3.
- It depends on the random init. From init seed 1 the colours were copied after 400 steps, but
  the kinds stayed at 0.07-0.17 through 1200 steps, and at batch 16. A kind is harder to find
  by its content alone: the math questions name two or three kinds each, so the copy has to
  know where it is in the question. The experiment's base model (seed 0) copies every slot.

Hence `pretrain_text_steps` without the image at `pretrain_learning_rate`, then `pretrain_steps`
with it at the gentler `pretrain_image_learning_rate`. At the test fixtures' init of 0.2 even
plain positional copying did not form (see `EXPERIMENT_OVERRIDES`).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from codedance_core.agent.messages import to_model_messages
from codedance_core.agent.prompts import initial_messages
from codedance_core.config.model import TinyModelConfig
from codedance_core.models.inputs import EncodedPrompt
from codedance_core.models.tokenizer import IM_START

IGNORE_INDEX = -100


def copy_conversation(row: dict[str, Any], with_image: bool = True) -> list[dict[str, Any]]:
    """A suite row as the policy sees it, answered by a thought that repeats the question."""
    extra = row["extra_info"]
    question, answer = extra["question"], extra["answer"]
    reply = f"<think>\n{question}\n</think>\n<answer>{answer}</answer>"
    return to_model_messages(
        [*initial_messages(question, with_image=with_image), {"role": "assistant", "content": reply}]
    )


def row_image(row: dict[str, Any]) -> Image.Image:
    """The row's (first) image, decoded."""
    return Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")


def copy_prompts(rows: Iterable[dict[str, Any]], bundle: Any, with_image: bool = True) -> list[EncodedPrompt]:
    """Each row's copy conversation encoded, with its image (image pads expanded) or without."""
    return [
        bundle.encode_messages(
            copy_conversation(row, with_image), [row_image(row)] if with_image else [], add_generation_prompt=False
        )
        for row in rows
    ]


def pretrain(bundle: Any, rows: list[dict[str, Any]], config: TinyModelConfig) -> list[float]:
    """Train `bundle.model` in place as a causal LM on the rows' copy conversations: first
    `pretrain_text_steps` without the image, then `pretrain_steps` with it (see the module's
    docstring); returns the loss of every step. Only the reply carries loss, as in SFT: on the
    whole conversation the constant system prompt and the unpredictable question outweighed the
    few slot tokens where copying pays, and the model learnt the template instead.
    """
    rng = random.Random(config.seed)
    losses = train_phase(bundle, rows, config.pretrain_text_steps, config.pretrain_learning_rate, config, rng, False)
    losses += train_phase(bundle, rows, config.pretrain_steps, config.pretrain_image_learning_rate, config, rng, True)
    bundle.model.eval()
    return losses


def train_phase(
    bundle: Any,
    rows: list[dict[str, Any]],
    steps: int,
    peak_lr: float,
    config: TinyModelConfig,
    rng: random.Random,
    with_image: bool,
) -> list[float]:
    """`steps` AdamW steps (linear warmup, then cosine to zero) on batches sampled from `rows`.

    Rows are encoded batch by batch (decoding a 672 px PNG and tokenizing a conversation take a few
    ms), so a pretraining over thousands of items never holds their pixels all at once.
    """
    model = bundle.model
    reply_start = bundle.tokenizer.encode(f"{IM_START}assistant\n", add_special_tokens=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    losses: list[float] = []
    model.train()
    bar = tqdm(range(steps), desc=f"pretraining {'with' if with_image else 'without'} the image", leave=False)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = peak_lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        prompts = copy_prompts(rng.sample(rows, min(config.pretrain_batch_size, len(rows))), bundle, with_image)
        inputs = bundle.model_inputs(prompts)
        loss = model(**inputs, labels=reply_labels(inputs["input_ids"], prompts, reply_start)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
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
