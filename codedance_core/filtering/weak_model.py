"""The tiny profile's weak model: a tiny model trained briefly, without tools, to answer directly.

Filtering needs a weak model whose strengths are known: in the paper a 7B that solves the easy
questions; here a ~200k-parameter model that, after a few hundred steps of plain next-token
loss on `<think>...</think><answer>gold</answer>` after each suite prompt, picks up what can be
read off the text (the `direct` family: the answer is in the question, or one of two letters or
yes/no) and little of what needs the image. Filtering with it then visibly removes the trivial
items and keeps the visual ones. No tool call is ever shown to it, so it runs with
`FilterConfig(allow_tools=False)`.

A plain CPU loop (batch of one, Adam) is enough at this size; it needs nothing from the SFT
trainer, which is built for trajectories with tool turns and masks.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from codedance_core.agent.items import item_from_rl_row
from codedance_core.agent.messages import to_model_messages
from codedance_core.config.model import TinyModelConfig
from codedance_core.models.bundle import ModelBundle, load_model_bundle
from codedance_core.models.images import pixel_bounds
from codedance_core.models.inputs import EncodedPrompt
from codedance_core.models.tiny import build_tiny_model
from codedance_core.models.tokenizer import IM_END

DIRECT_THINK = "<think>I read the answer off the question.</think>"


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
) -> Path:
    """Build a tiny model on the rows' text, train it `steps` single-row Adam steps to answer
    directly, save it to `out_dir` (model, tokenizer, image processor); returns out_dir."""
    if not suite_rows:
        raise ValueError("train_weak_model needs at least one suite row")
    out_dir = Path(out_dir)
    build_tiny_model(out_dir, _corpus(suite_rows), tiny_config or TinyModelConfig(vocab_size=1200, seed=seed))
    bundle = load_model_bundle(out_dir, device="cpu", dtype="float32")
    examples = encode_examples(bundle, suite_rows)
    losses = fit_examples(bundle, examples, steps, lr, seed)
    bundle.model.save_pretrained(str(out_dir))
    (out_dir / "weak_training.txt").write_text(
        f"steps={steps} lr={lr} seed={seed} rows={len(examples)} "
        f"first_loss={losses[0]:.4f} last_loss={sum(losses[-20:]) / len(losses[-20:]):.4f}\n"
    )
    return out_dir


def fit_examples(
    bundle: ModelBundle, examples: Sequence[tuple[EncodedPrompt, list[int]]], steps: int, lr: float, seed: int
) -> list[float]:
    """Adam on one random example per step; the loss of every step."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(bundle.model.parameters(), lr=lr)
    bundle.model.train()
    losses = []
    for _ in range(steps):
        prompt, labels = examples[rng.randrange(len(examples))]
        inputs = bundle.model_inputs([prompt])
        target = torch.tensor([labels], device=bundle.device)
        optimizer.zero_grad()
        loss = bundle.model(**inputs, labels=target).loss
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    bundle.model.eval()
    return losses
