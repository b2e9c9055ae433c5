"""Chunked log-probs and entropy against the plain computation from full-vocabulary logits."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from codedance_core.config.train import LoRAConfig
from codedance_core.train.distributed import DistContext
from codedance_core.train.model_setup import add_lora
from codedance_core.train.sft import token_loss_sum
from codedance_core.train.sft_data import IGNORE_INDEX
from codedance_core.train.token_logprobs import chunked_scores, token_scores
from tests.codedance_core.train.ranks import zero3_engine
from tests.conftest import free_port

TEMPERATURE = 0.7
CHUNK = 7  # smaller than the scored positions and dividing none of the counts below


@pytest.fixture
def model(tiny_bundle):
    """A private copy of the tiny model (the session's copy must keep no gradients)."""
    return copy.deepcopy(tiny_bundle.model)


@pytest.fixture
def batch(tiny_bundle):
    """Two left-padded rows of different lengths, one with an image; (inputs, targets, scored)."""
    image = Image.new("RGB", (56, 56), (0, 128, 255))
    with_image = tiny_bundle.encode_messages(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}], [image]
    )
    text_only = tiny_bundle.encode_messages([{"role": "user", "content": "Add 2 and 3, then print it."}])
    inputs = tiny_bundle.model_inputs([with_image, text_only])
    targets = inputs["input_ids"][:, 1:]
    scored = inputs["attention_mask"][:, 1:].bool()
    scored[:, ::3] = False  # a scattered subset, as a loss mask would be
    return inputs, targets, scored


def plain_scores(model, inputs, targets, temperature):
    """The reference: full float32 logits, log-softmax and entropy at every position."""
    logits = model(**inputs, use_cache=False).logits[:, :-1].float() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, targets[..., None]).squeeze(-1), -(logp.exp() * logp).sum(-1)


def gradients(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_gradients(expected, actual):
    assert expected.keys() == actual.keys() and expected
    for name, grad in expected.items():
        torch.testing.assert_close(actual[name], grad, rtol=1e-4, atol=1e-6 * float(grad.abs().max()) + 1e-9)


def test_chunked_logprobs_and_their_gradients_equal_the_full_logits(model, batch):
    inputs, targets, scored = batch
    assert int(scored.sum()) > CHUNK and int(scored.sum()) % CHUNK
    weights = torch.randn(targets.shape, generator=torch.Generator().manual_seed(0)) * scored

    expected, _ = plain_scores(model, inputs, targets, TEMPERATURE)
    expected_grads = gradients(model, (expected * weights).sum())
    chunked = token_scores(model, inputs, targets, scored, TEMPERATURE, CHUNK)
    chunked_grads = gradients(model, (chunked.logprobs * weights).sum())

    torch.testing.assert_close(chunked.logprobs, expected * scored, rtol=1e-5, atol=1e-5)
    assert chunked.logprobs.dtype == torch.float32 and chunked.entropy is None
    assert_same_gradients(expected_grads, chunked_grads)
    assert "model.visual.merger.mlp.0.weight" in chunked_grads  # the image reached the backbone


def test_entropy_is_chunked_too_and_has_a_gradient_only_when_trained(model, batch):
    inputs, targets, scored = batch
    weights = torch.rand(targets.shape, generator=torch.Generator().manual_seed(1)) * scored

    _, expected = plain_scores(model, inputs, targets, TEMPERATURE)
    expected_grads = gradients(model, (expected * weights).sum())
    trained = token_scores(model, inputs, targets, scored, TEMPERATURE, CHUNK, entropy="trained")
    trained_grads = gradients(model, (trained.entropy * weights).sum())

    torch.testing.assert_close(trained.entropy, expected * scored, rtol=1e-5, atol=1e-5)
    assert_same_gradients(expected_grads, trained_grads)
    detached = token_scores(model, inputs, targets, scored, TEMPERATURE, CHUNK, entropy="detached")
    assert detached.entropy.grad_fn is None and detached.logprobs.grad_fn is not None
    torch.testing.assert_close(detached.entropy, trained.entropy.detach())


def test_sft_loss_sum_equals_cross_entropy_over_the_labelled_tokens(model, batch):
    inputs, _, scored = batch
    labels = inputs["input_ids"].masked_fill(~torch.nn.functional.pad(scored, (1, 0)), IGNORE_INDEX)

    logits = model(**inputs, use_cache=False).logits[:, :-1].float()
    expected = F.cross_entropy(logits.flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
    expected_grads = gradients(model, expected)
    chunked = token_loss_sum(model, inputs, labels, CHUNK)
    chunked_grads = gradients(model, chunked)

    torch.testing.assert_close(chunked, expected, rtol=1e-6, atol=1e-4)
    assert_same_gradients(expected_grads, chunked_grads)


def test_a_lora_model_is_scored_through_its_adapters(model, batch):
    inputs, targets, scored = batch
    lora = add_lora(model, LoRAConfig(enabled=True, rank=4, alpha=8, dropout=0.0))
    for name, parameter in lora.named_parameters():
        if "lora_B" in name:  # fresh adapters are zero: make them matter
            torch.nn.init.normal_(parameter, std=0.1)
    expected, _ = plain_scores(lora, inputs, targets, TEMPERATURE)
    expected_grads = gradients(lora, (expected * scored).sum())
    chunked = token_scores(lora, inputs, targets, scored, TEMPERATURE, CHUNK)
    chunked_grads = gradients(lora, (chunked.logprobs * scored).sum())

    torch.testing.assert_close(chunked.logprobs, expected * scored, rtol=1e-5, atol=1e-5)
    assert_same_gradients(expected_grads, chunked_grads)
    assert any("lora_A" in name for name in chunked_grads)


def identity_head() -> torch.nn.Linear:
    head = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    return head


def test_scores_follow_the_temperature_on_numbers_worked_by_hand():
    hidden = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    with torch.no_grad():
        logp, entropy = chunked_scores(hidden, torch.tensor([0, 1]), identity_head(), 2.0, 16, entropy="detached")
    assert float(logp[0]) == pytest.approx(1.0 - math.log(math.e + 1.0))  # logits / 2 = (1, 0)
    assert float(logp[1]) == pytest.approx(math.log(0.5))
    assert float(entropy[1]) == pytest.approx(math.log(2.0))


@pytest.mark.parametrize("positions", [0, 2, 5])
def test_a_fixed_chunk_count_calls_the_head_that_often_forward_and_backward(positions):
    # ZeRO-3 gathers the head's weight on every call: ranks with fewer positions must call it as often.
    head, calls = identity_head(), []
    head.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    hidden = torch.randn(positions, 2, requires_grad=True)
    logp, _ = chunked_scores(hidden, torch.zeros(positions, dtype=torch.long), head, 1.0, chunk_tokens=2, chunks=4)
    assert logp.shape == (positions,) and len(calls) == 4
    logp.sum().backward()  # each chunk's logits are recomputed for its backward
    assert len(calls) == 8
    assert head.weight.grad is not None


def _zero3_rank(rank: int, world_size: int, port: int, model_dir: str, work_dir: str) -> None:
    engine = zero3_engine(rank, world_size, port, model_dir)
    inputs, targets, scored = torch.load(Path(work_dir) / f"batch{rank}.pt")
    dist = DistContext.current(use_gpu=False)
    with torch.no_grad():
        frozen = token_scores(engine, inputs, targets, scored, TEMPERATURE, CHUNK, dist=dist).logprobs
    scores = token_scores(engine, inputs, targets, scored, TEMPERATURE, CHUNK, "trained", dist)
    engine.backward(scores.logprobs.sum() + scores.entropy.sum())
    engine.step()
    torch.save({"frozen": frozen, "trained": scores.logprobs.detach()}, Path(work_dir) / f"scores{rank}.pt")


def test_zero3_ranks_with_different_lengths_score_and_step_together(tiny_model_dir, tiny_bundle, batch, tmp_path):
    # Rank 1 scores 3 positions (one chunk), rank 0 all of its batch (several): ZeRO-3 gathers the
    # LM head on every call, so a rank that called it less often than the other would hang.
    inputs, targets, scored = batch
    few = torch.zeros_like(scored)
    few[1, -3:] = True
    torch.save((inputs, targets, scored), tmp_path / "batch0.pt")
    torch.save((inputs, targets, few), tmp_path / "batch1.pt")
    torch.multiprocessing.spawn(
        _zero3_rank, args=(2, free_port(), str(tiny_model_dir), str(tmp_path)), nprocs=2
    )
    expected, _ = plain_scores(tiny_bundle.model, inputs, targets, TEMPERATURE)
    for rank, mask in enumerate((scored, few)):
        result = torch.load(tmp_path / f"scores{rank}.pt")
        torch.testing.assert_close(result["frozen"], expected.detach() * mask, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(result["trained"], result["frozen"])
