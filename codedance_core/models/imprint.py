"""Teach a tiny model one conversation by heart.

A tiny model with random weights writes noise, so anything that needs a model whose behaviour is
known (the tool loop's tests, the rollout benchmark) first imprints a trajectory on it: a few
dozen Adam steps on that one conversation, loss on the assistant turns only. Greedy decoding then
replays the conversation, which exercises the real generate -> run code -> observe path without a
training run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from codedance_core.models.bundle import ModelBundle
from codedance_core.models.inputs import EncodedPrompt
from codedance_core.models.tokenizer import IM_END

Turns = Sequence[tuple[str, str | None]]


def imprint_conversation(
    bundle: ModelBundle,
    prompt_messages: Sequence[dict],
    prompt_images: Sequence[Image.Image],
    turns: Turns,
    steps: int = 120,
    lr: float = 1e-2,
    seed: int = 0,
) -> float:
    """Overfit `bundle.model` on a conversation; returns the final loss.

    `prompt_messages` are model messages (image parts included); `turns` is a list of
    (assistant text, observation text or None): each assistant turn is closed with `<|im_end|>`,
    and an observation, when given, follows as a tool turn.
    """
    return imprint_conversations(bundle, [(prompt_messages, prompt_images, turns)], steps, lr, seed)


def imprint_conversations(
    bundle: ModelBundle,
    conversations: Sequence[tuple[Sequence[dict], Sequence[Image.Image], Turns]],
    steps: int = 120,
    lr: float = 1e-2,
    seed: int = 0,
) -> float:
    """Overfit `bundle.model` on several conversations at once (one batch); returns the final loss.

    Two conversations that share a prompt and differ from some token on are learnt as a mixture:
    the joint loss is lowest when the model gives each branch half the probability, so sampling
    then takes either (imprinting them one after the other leaves only the last).
    """
    examples = [_encode(bundle, messages, images, turns) for messages, images, turns in conversations]
    inputs = bundle.model_inputs([prompt for prompt, _ in examples])
    width = inputs["input_ids"].shape[1]
    target = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (_, labels) in enumerate(examples):
        target[row, width - len(labels) :] = torch.tensor(labels, dtype=torch.long)
    target = target.to(bundle.device)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(bundle.model.parameters(), lr=lr)
    bundle.model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        optimizer.zero_grad()
        loss = bundle.model(**inputs, labels=target).loss
        loss.backward()
        optimizer.step()
    bundle.model.eval()
    return float(loss.detach())


def _encode(
    bundle: ModelBundle, messages: Sequence[dict], images: Sequence[Image.Image], turns: Turns
) -> tuple[EncodedPrompt, list[int]]:
    """The conversation's ids and labels: its assistant turns only."""
    tokenizer = bundle.tokenizer
    ids = list(bundle.encode_messages(messages, images).token_ids)
    labels = [-100] * len(ids)
    newline = tokenizer.encode("\n", add_special_tokens=False)
    for text, observation in turns:
        turn = tokenizer.encode(text + IM_END, add_special_tokens=False)
        ids += turn + newline
        labels += turn + [-100] * len(newline)
        if observation is not None:
            tool = bundle.encode_messages([{"role": "tool", "content": observation}], []).token_ids
            ids += tool
            labels += [-100] * len(tool)
    return EncodedPrompt(ids, list(images)), labels
