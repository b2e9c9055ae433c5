"""The tiny profile's weak model: a tiny model trained briefly, without tools, to answer directly.

Filtering needs a weak model whose strengths are known: in the paper a 7B that solves the easy
questions; here a tiny model (width 128, ~0.6M parameters) that, after a few hundred steps of plain next-token
loss on `<think>...</think><answer>gold</answer>` after each suite prompt, picks up what can be
read off the text (the `direct` family: the answer is in the question, or one of two letters or
yes/no) and little of what needs the image. Filtering with it then visibly removes the trivial
items and keeps the visual ones. No tool call is ever shown to it, so it answers in one turn
(`filter.rollout.max_turns: 1`).

Two choices make "learns the `direct` family and little else" true within a short run:
- the text-answerable items get a fixed share of every batch (`direct_share`): in a uniform draw
  they are a fifth of the rows, and a lookup ("the note says the kite is red") is a quarter of
  those, too rare for a few hundred steps to teach the copy;
- images are shown at a few cells (`WEAK_MAX_PIXELS`): the weak model answers from the text
  anyway, and a 256-cell image would make each step ten times longer.

A plain CPU loop (small batches, Adam) is enough at this size; it needs nothing from the SFT
trainer, which is built for trajectories with tool turns and masks.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from codedance_core.agent.items import item_from_rl_row
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.config.model import PIXELS_PER_CELL, TinyModelConfig
from codedance_core.models.bundle import ModelBundle, load_model_bundle
from codedance_core.models.images import pixel_bounds
from codedance_core.models.inputs import EncodedPrompt
from codedance_core.models.tiny import build_tiny_model
from codedance_core.models.tokenizer import IM_END

DIRECT_THINK = "<think>I read the answer off the question.</think>"
# Families whose answer can be read off the question's text.
TEXT_FAMILIES = ("suite_direct",)
WEAK_MAX_PIXELS = 16 * PIXELS_PER_CELL


def direct_answer_text(gold: str) -> str:
    """What the weak model learns to write: a short thought and the answer, no code."""
    return f"{DIRECT_THINK}<answer>{gold}</answer>"


def _corpus(rows: Sequence[dict[str, Any]]) -> Iterable[str]:
    """Tokenizer training text: the rows' prompts and answers (so both tokenise compactly)."""
    for row in rows:
        messages = row.get("prompt") or row.get("messages") or []
        yield "\n".join(str(m.get("content", "")) for m in messages)
        yield direct_answer_text(str((row.get("reward_model") or {}).get("ground_truth", "")))


def encode_examples(bundle: ModelBundle, rows: Sequence[dict[str, Any]]) -> list[tuple[EncodedPrompt, list[int]]]:
    """(prompt + answer tokens, labels with -100 on the prompt) for each readable row."""
    low, high = pixel_bounds(bundle.image_processor)
    examples = []
    for index, row in enumerate(rows):
        item = item_from_rl_row(row, index, low, high)
        prompt = bundle.encode_messages(to_model_messages(item.messages), item.images)
        answer = bundle.tokenizer.encode(direct_answer_text(item.gold) + IM_END, add_special_tokens=False)
        ids = list(prompt.token_ids) + answer
        examples.append((EncodedPrompt(ids, list(item.images)), [-100] * len(prompt.token_ids) + answer))
    return examples


def train_weak_model(
    suite_rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    steps: int = 300,
    lr: float = 3e-3,
    seed: int = 0,
    tiny_config: TinyModelConfig | None = None,
    batch_size: int = 8,
    direct_share: float = 0.5,
) -> Path:
    """Build a tiny model on the rows' text, train it `steps` Adam steps of `batch_size` rows to
    answer directly (`direct_share` of each batch from text-answerable rows when there are any),
    save it to `out_dir` (model, tokenizer, image processor); returns out_dir."""
    if not suite_rows:
        raise ValueError("train_weak_model needs at least one suite row")
    out_dir = Path(out_dir)
    config = tiny_config or TinyModelConfig(
        vocab_size=1200, hidden_size=128, intermediate_size=256, max_pixels=WEAK_MAX_PIXELS, seed=seed
    )
    build_tiny_model(out_dir, _corpus(suite_rows), config)
    bundle = load_model_bundle(out_dir, device="cpu", dtype="float32")
    examples = encode_examples(bundle, suite_rows)
    text_only = [i for i, row in enumerate(suite_rows) if row.get("data_source") in TEXT_FAMILIES]
    sampler = BatchSampler(len(examples), text_only, batch_size, direct_share, seed)
    losses = fit_examples(bundle, examples, steps, lr, seed, sampler)
    bundle.model.save_pretrained(str(out_dir))
    (out_dir / "weak_training.txt").write_text(
        f"steps={steps} batch_size={batch_size} direct_share={direct_share} lr={lr} seed={seed} "
        f"rows={len(examples)} first_loss={losses[0]:.4f} last_loss={sum(losses[-20:]) / len(losses[-20:]):.4f}\n"
    )
    return out_dir


class BatchSampler:
    """Row indices of each batch: `share` of them from `preferred` (when it is not empty), the rest
    from all rows, drawn with replacement from a seeded generator."""

    def __init__(self, rows: int, preferred: Sequence[int], batch_size: int, share: float, seed: int):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"direct_share must be within [0, 1], got {share}")
        self.rows, self.preferred, self.batch_size = rows, list(preferred), batch_size
        self.from_preferred = round(batch_size * share) if self.preferred else 0
        self.rng = random.Random(seed)

    def next_batch(self) -> list[int]:
        picked = [self.rng.choice(self.preferred) for _ in range(self.from_preferred)]
        picked += [self.rng.randrange(self.rows) for _ in range(self.batch_size - self.from_preferred)]
        return picked


def fit_examples(
    bundle: ModelBundle,
    examples: Sequence[tuple[EncodedPrompt, list[int]]],
    steps: int,
    lr: float,
    seed: int,
    sampler: BatchSampler | None = None,
) -> list[float]:
    """Adam on one batch per step (one random example per step without a sampler); every step's loss."""
    sampler = sampler or BatchSampler(len(examples), [], 1, 0.0, seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(bundle.model.parameters(), lr=lr)
    bundle.model.train()
    losses = []
    for _ in range(steps):
        batch = [examples[index] for index in sampler.next_batch()]
        inputs = bundle.model_inputs([prompt for prompt, _ in batch])
        optimizer.zero_grad()
        loss = bundle.model(**inputs, labels=left_padded_labels(batch, inputs["input_ids"].shape[1])).loss
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    bundle.model.eval()
    return losses


def left_padded_labels(batch: Sequence[tuple[EncodedPrompt, list[int]]], width: int) -> torch.Tensor:
    """Labels aligned with `model_inputs`' left padding (padding positions are ignored)."""
    target = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (_, labels) in enumerate(batch):
        target[row, width - len(labels) :] = torch.tensor(labels, dtype=torch.long)
    return target
