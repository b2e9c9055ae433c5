"""A short text pretraining of the tiny model, so that it arrives at SFT able to copy.

A real policy starts from a pretrained checkpoint that can already repeat what it read; a
random-weight model cannot, and SFT on a few hundred trajectories does not teach it: measured
on the tiny profile, an SFT'd model's next token after "The note itself says the kite is"
had the same distribution whatever colour the note named, so it wrote the template and a
made-up slot (a count of the wrong colour, a note's wrong colour). Copying needs attention
heads that find an earlier occurrence and repeat what followed it, which a small model learns
from many short copy examples long before it learns them from long trajectories.

So the tiny model is pretrained for `TinyModelConfig.pretrain_steps` on suite questions, each
in the policy's chat format and followed by an assistant turn that repeats the question in its
thought and gives the answer: text only (no image). It is the one place where the tiny model
gets "general" skills before SFT.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from codedance_core.config.model import TinyModelConfig
from codedance_core.models.tokenizer import END_OF_TEXT


def copy_texts(rows: Iterable[dict[str, Any]], tokenizer: Any) -> list[str]:
    """One conversation per suite row, in the policy's own format (system prompt, the question and
    the instruction; no image): an assistant turn whose thought repeats the question, then the answer.

    The format matters: a model pretrained on the bare question copied it, yet did not copy once
    the system prompt and the instruction stood between the question and its thought.
    """
    from codedance_core.agent.prompts import initial_messages

    texts = []
    for row in rows:
        extra = row["extra_info"]
        question, answer = extra["question"], extra["answer"]
        reply = f"<think>\n{question}\n</think>\n<answer>{answer}</answer>"
        messages = [*initial_messages(question, with_image=False), {"role": "assistant", "content": reply}]
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
    return texts


def pretrain(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], config: TinyModelConfig) -> list[float]:
    """Train `model` in place as a causal LM on `texts` (text only); returns the loss of every step."""
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    pad_id = int(tokenizer.convert_tokens_to_ids(END_OF_TEXT))
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
        batch = rng.sample(encoded, min(config.pretrain_batch_size, len(encoded)))
        input_ids, attention_mask = _pad(batch, pad_id)
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _pad(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask."""
    length = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask
