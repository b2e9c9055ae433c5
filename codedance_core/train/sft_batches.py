"""Which examples go in which batch, and how a batch becomes tensors with labels.

The batch plan of an epoch is a pure function of (lengths, seed, epoch): a resumed run rebuilds
the same plan and skips the batches it already consumed, which is what makes resume exact. With
length grouping, rows are shuffled, cut into chunks of `group_batches` batches, sorted by length
inside each chunk and batched, and the batches are shuffled again: similar lengths share a batch
(little padding) while the order stays random.

On several data-parallel workers each takes every world_size-th batch of the same plan, after the
plan is trimmed to a multiple of world_size so every worker runs the same number of steps (a
collective would otherwise wait forever for the one that ran out).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from codedance_core.train.sft_data import IGNORE_INDEX, SFTExample, as_prompt


def plan_epoch(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    group_batches: int = 16,
) -> list[list[int]]:
    """Batches (lists of example indices) of one epoch, in order; the last may be smaller."""
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    chunk = batch_size * group_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        ranked = sorted(order[start : start + chunk], key=lambda index: lengths[index])
        batches += [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
    rng.shuffle(batches)
    return batches


def shard_batches(batches: list[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """This worker's batches: every world_size-th, the plan trimmed so all workers get as many."""
    usable = len(batches) - len(batches) % world_size
    return batches[rank:usable:world_size]


def collate_examples(examples: Sequence[SFTExample], bundle: Any) -> dict[str, torch.Tensor]:
    """Model inputs through `bundle.model_inputs` (left-padded, mm_token_type_ids) plus `labels`."""
    inputs = bundle.model_inputs([as_prompt(example, bundle.image_processor) for example in examples])
    width = inputs["input_ids"].shape[1]
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        labels[row, width - len(example.labels) :] = torch.tensor(example.labels, dtype=torch.long)
    inputs["labels"] = labels.to(inputs["input_ids"].device)
    return inputs
