"""The GRPO loss on numbers worked out by hand: clipping, dual clip, token-mean weights, masks, KL."""

from __future__ import annotations

import math

import pytest
import torch

from codedance_core.train.grpo_loss import (
    clipped_policy_loss,
    k3_kl,
    token_weights,
)


def logp_of_ratio(ratios: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(new, old) log-probs whose ratio per token is `ratios` (old log-prob fixed at log 0.5)."""
    old = torch.full((1, len(ratios)), math.log(0.5))
    new = old + torch.log(torch.tensor([ratios]))
    return new, old


def test_positive_advantage_is_clipped_above_and_negative_below():
    # ratios 1.5 (A=+1 -> clipped at 1.2), 0.5 (A=-1 -> clipped at 0.8), 1.0 (A=+2 -> not clipped)
    new, old = logp_of_ratio([1.5, 0.5, 1.0])
    advantages = torch.tensor([[1.0, -1.0, 2.0]])
    weights = torch.full((1, 3), 1 / 3)
    result = clipped_policy_loss(new, old, advantages, weights, 0.2, 0.2, dual_clip=None)
    # per token: max(-1*1.5, -1*1.2) = -1.2 ; max(1*0.5, 1*0.8) = 0.8 ; max(-2, -2) = -2
    assert float(result.loss) == pytest.approx((-1.2 + 0.8 - 2.0) / 3)
    assert result.clipped_tokens == 2
    assert result.ratio_sum == pytest.approx(3.0)


def test_clipped_tokens_get_no_gradient_and_unclipped_ones_do():
    new, old = logp_of_ratio([1.5, 1.0])
    new = new.clone().requires_grad_(True)
    result = clipped_policy_loss(new, old, torch.tensor([[1.0, 1.0]]), torch.full((1, 2), 0.5), dual_clip=None)
    result.loss.backward()
    assert new.grad[0, 0] == 0.0  # ratio 1.5 > 1.2 with A > 0: clipped, no push further
    assert float(new.grad[0, 1]) == pytest.approx(-0.5)  # d(-A * ratio * w)/d logp = -A * ratio * w


def test_dual_clip_bounds_a_negative_advantage_with_an_exploding_ratio():
    new, old = logp_of_ratio([10.0])
    result = clipped_policy_loss(new, old, torch.tensor([[-1.0]]), torch.ones((1, 1)), dual_clip=3.0)
    assert float(result.loss) == pytest.approx(3.0)  # min(max(10, 0.8), 3) * |A|
    unbounded = clipped_policy_loss(new, old, torch.tensor([[-1.0]]), torch.ones((1, 1)), dual_clip=None)
    assert float(unbounded.loss) == pytest.approx(10.0)


def test_token_mean_weighs_every_model_token_of_the_mini_batch_the_same():
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    weights = token_weights(mask, "token-mean", total_tokens=4, total_sequences=2)
    assert weights.tolist() == [[0.0, 0.25, 0.25, 0.25], [0.0, 0.0, 0.25, 0.0]]
    per_sequence = token_weights(mask, "seq-mean-token-mean", total_tokens=4, total_sequences=2)
    assert per_sequence[0, 1] == pytest.approx(1 / 6) and per_sequence[1, 2] == pytest.approx(0.5)


def test_masked_tokens_change_nothing_whatever_their_values():
    new, old = logp_of_ratio([1.1, 50.0])
    weights = torch.tensor([[1.0, 0.0]])
    huge = clipped_policy_loss(new, old, torch.tensor([[1.0, 1e6]]), weights)
    small = clipped_policy_loss(new, old, torch.tensor([[1.0, -3.0]]), weights)
    assert float(huge.loss) == float(small.loss) == pytest.approx(-1.1)
    assert huge.clipped_tokens == 0


def test_splitting_a_mini_batch_into_micro_batches_keeps_the_token_mean_loss():
    torch.manual_seed(0)
    new, old, adv = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    mask = (torch.rand(4, 5) > 0.3).float()
    total = float(mask.sum())
    whole = clipped_policy_loss(new, old, adv, token_weights(mask, "token-mean", total, 4)).loss
    parts = sum(
        clipped_policy_loss(new[i : i + 2], old[i : i + 2], adv[i : i + 2],
                            token_weights(mask[i : i + 2], "token-mean", total, 4)).loss
        for i in (0, 2)
    )
    assert float(parts) == pytest.approx(float(whole), abs=1e-6)


def test_k3_kl_is_zero_at_equal_policies_and_positive_otherwise():
    logp = torch.tensor([[-1.0, -2.0]])
    assert torch.equal(k3_kl(logp, logp), torch.zeros(1, 2))
    # r = ref - logp = 0.5: exp(0.5) - 0.5 - 1
    assert float(k3_kl(logp, logp + 0.5)[0, 0]) == pytest.approx(math.exp(0.5) - 1.5)
    result = clipped_policy_loss(logp, logp, torch.zeros(1, 2), torch.full((1, 2), 0.5), ref_logp=logp + 0.5, kl_coef=0.1)
    assert float(result.loss) == pytest.approx(0.1 * (math.exp(0.5) - 1.5))
