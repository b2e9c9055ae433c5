"""The GRPO objective on tensors: per-token weights, the clipped loss and the KL to a reference.

Everything here works on a left-padded batch in the "target" frame: column j of a (B, W-1)
tensor is about token j+1 of the padded row, predicted by the logits at column j. The trainer
lays per-token arrays (advantages, old log-probs, the loss mask) out in that frame once, so the
loss is one elementwise expression with no index bookkeeping.

Aggregation is by per-token WEIGHTS rather than by a mean inside the function: with token-mean,
every model token of the mini-batch has weight 1 / (tokens in the mini-batch, all micro-batches
and workers together). A micro-batch's loss is then its share of the mini-batch loss, and summing
gradients over micro-batches gives exactly the gradient of the full token mean, whatever the
micro-batch size. That is the original's aggregation (verl's `token-mean`). The log-probs and
entropy it reads come from `token_logprobs`, a chunk of positions at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# k3 is exp(x) - x - 1: bound x so one wild token cannot overflow it (verl clamps the same way).
KL_LOG_RATIO_BOUND = 10.0


def token_weights(
    mask: torch.Tensor, aggregation: str, total_tokens: float, total_sequences: float
) -> torch.Tensor:
    """Per-token weights whose sum over a whole mini-batch is 1.

    token-mean: mask / total_tokens. seq-mean-token-mean: each sequence's tokens share
    1 / total_sequences equally (long and short responses count the same).
    """
    mask = mask.float()
    if aggregation == "token-mean":
        return mask / max(total_tokens, 1.0)
    if aggregation == "seq-mean-token-mean":
        per_sequence = mask.sum(-1, keepdim=True).clamp(min=1.0)
        return mask / per_sequence / max(total_sequences, 1.0)
    raise ValueError(f"unknown loss aggregation {aggregation!r}")


@dataclass
class PolicyLoss:
    """A micro-batch's share of the loss and the sums its statistics are made of."""

    loss: torch.Tensor
    clipped_tokens: float
    kl_sum: float
    ratio_sum: float


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(pi || ref) per token: exp(r) - r - 1 with r = ref_logp - logp (always >= 0)."""
    log_ratio = (ref_logp - logp).clamp(-KL_LOG_RATIO_BOUND, KL_LOG_RATIO_BOUND)
    return log_ratio.exp() - log_ratio - 1.0


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = 3.0,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> PolicyLoss:
    """PPO's clipped surrogate, weighted per token; optionally dual-clipped and with a k3 KL term.

    per token: max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high)), and for A < 0 at
    most -A * dual_clip (a token whose ratio exploded cannot dominate the batch).
    Tokens with weight 0 (prompt, observations, padding) contribute nothing, whatever their values.
    """
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        per_token = torch.where(advantages < 0, torch.minimum(per_token, -advantages * dual_clip), per_token)
    loss = (per_token * weights).sum()
    kl_sum = 0.0
    if ref_logp is not None:
        kl = k3_kl(logp, ref_logp)
        if kl_coef > 0:
            loss = loss + kl_coef * (kl * weights).sum()
        kl_sum = float((kl.detach() * (weights > 0)).sum())
    counted = weights > 0
    return PolicyLoss(
        loss=loss,
        clipped_tokens=float(((clipped > unclipped) & counted).sum()),
        kl_sum=kl_sum,
        ratio_sum=float((ratio.detach() * counted).sum()),
    )
