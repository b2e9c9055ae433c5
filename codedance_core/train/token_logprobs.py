"""Per-token log-probs and entropy from the last hidden states, a chunk of positions at a time.

The plain way -- `model(**inputs).logits`, then a float32 log-softmax -- holds vocabulary logits
for every position of a micro-batch: with Qwen2.5-VL's 152k vocabulary and 20k-token sequences
that is tens of gigabytes, and autograd keeps them for the backward pass. Here the model runs up
to its last hidden states only, and the LM head is applied to `chunk_tokens` positions at a time
under `torch.utils.checkpoint` (non-reentrant): each chunk's logits are freed as soon as its
log-probs are out, and the backward pass recomputes them one chunk at a time. Only the positions
a caller asks for are scored (the model's own tokens in GRPO, the labelled ones in SFT): prompts,
tool outputs and padding never reach the LM head.

The forward goes through the model as given -- a DDP or DeepSpeed wrapper, a peft model -- so
gradient synchronisation and ZeRO-3's parameter gathering happen as they would with `logits`;
a forward hook on the backbone (the module whose output the LM head reads) records its hidden
states, and `logits_to_keep=1` keeps the model's own LM head call to one position per row.
The LM head is then called as a module, so ZeRO-3's gather hooks fire for it. ZeRO-3 gathers the
head's weight on every call, a collective, so all ranks must call it the same number of times:
with a `DistContext` the number of chunks is the largest over ranks, and a rank with fewer
positions scores short (possibly dummy) chunks whose values are dropped.

Entropy is computed only when asked, from the same chunk's logits: with a gradient when it is a
loss term, else without one, for the log (exact, for the price of one more pass over the chunk's
logits, repeated when the backward recomputes the chunk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as torch_dist
from torch.utils.checkpoint import checkpoint

from codedance_core.train.distributed import DistContext

# "none": no entropy; "detached": for logging, no gradient; "trained": with a gradient (a bonus).
EntropyMode = Literal["none", "detached", "trained"]


@dataclass
class TokenScores:
    """Log-probs (and entropy when asked) in the target frame: column j is about token j + 1."""

    logprobs: torch.Tensor  # (B, W-1) float32, 0 at positions not scored
    entropy: torch.Tensor | None  # (B, W-1) float32, 0 at positions not scored


def model_parts(model: Any) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(backbone, lm_head) of a causal LM under DDP / DeepSpeed wrappers and peft."""
    inner = getattr(model, "module", model)
    if hasattr(inner, "get_base_model"):  # peft: the transformers model with adapters injected
        inner = inner.get_base_model()
    return getattr(inner, inner.base_model_prefix), inner.get_output_embeddings()


def final_hidden_states(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, W, H) hidden states the LM head reads, from a forward through the (wrapped) model."""
    backbone, _ = model_parts(model)
    captured: list[torch.Tensor] = []

    def record(_module: Any, _args: Any, output: Any) -> None:
        captured.append(output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])

    handle = backbone.register_forward_hook(record)
    try:
        model(**inputs, use_cache=False, logits_to_keep=1)
    finally:
        handle.remove()
    return captured[-1]


def max_over_ranks(value: int, dist: DistContext | None = None) -> int:
    """The largest `value` over ranks (itself when there is one rank): counts of collective calls."""
    if dist is None or not dist.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=dist.device)
    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.MAX)
    return int(tensor.item())


def _score_chunk(
    lm_head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, entropy: EntropyMode
) -> tuple[torch.Tensor, ...]:
    scaled = lm_head(hidden).float() / temperature
    normaliser = torch.logsumexp(scaled, dim=-1)
    logprobs = scaled.gather(-1, targets[:, None]).squeeze(-1) - normaliser
    if entropy == "none":
        return (logprobs,)
    with torch.set_grad_enabled(entropy == "trained" and torch.is_grad_enabled()):
        # H = logsumexp(z) - sum_v p_v z_v, with no full log-softmax kept beside the logits.
        values = normaliser - (torch.softmax(scaled, dim=-1) * scaled).sum(-1)
    return logprobs, values


def chunked_scores(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    lm_head: torch.nn.Module,
    temperature: float,
    chunk_tokens: int,
    entropy: EntropyMode = "none",
    chunks: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of `targets` (N,) under softmax(lm_head(hidden) / T) for hidden (N, H), in float32,
    and the entropy per position when asked, `chunks` pieces of at most about `chunk_tokens` rows.

    `chunks` (at least what N needs) fixes the number of LM-head calls; when N is smaller,
    position 0 (or a zero row) is repeated to fill the pieces and its values are dropped.
    """
    count = len(targets)
    pieces = max(chunks or 1, math.ceil(count / chunk_tokens), 1)
    if count < pieces:  # dummy rows so that every piece calls the head
        filler = hidden[:1] if count else hidden.new_zeros((1, hidden.shape[-1]))
        hidden = torch.cat([hidden, filler.expand(pieces - count, -1)])
        targets = torch.cat([targets, targets.new_zeros(pieces - count)])
    outputs = []
    for hidden_piece, target_piece in zip(hidden.tensor_split(pieces), targets.tensor_split(pieces), strict=True):
        if torch.is_grad_enabled():
            outputs.append(
                checkpoint(_score_chunk, lm_head, hidden_piece, target_piece, temperature, entropy, use_reentrant=False)
            )
        else:
            outputs.append(_score_chunk(lm_head, hidden_piece, target_piece, temperature, entropy))
    logprobs = torch.cat([output[0] for output in outputs])[:count]
    values = torch.cat([output[1] for output in outputs])[:count] if entropy != "none" else None
    return logprobs, values


def token_scores(
    model: Any,
    inputs: dict[str, torch.Tensor],
    targets: torch.Tensor,
    scored: torch.Tensor,
    temperature: float,
    chunk_tokens: int,
    entropy: EntropyMode = "none",
    dist: DistContext | None = None,
) -> TokenScores:
    """Log-probs of `targets` (B, W-1) -- token j + 1 of each row -- at the positions where `scored`
    (B, W-1, bool) is true, at temperature T, never holding logits for more than a chunk."""
    hidden = final_hidden_states(model, inputs)[:, :-1]
    _, lm_head = model_parts(model)
    where = scored.nonzero(as_tuple=True)
    chunks = max_over_ranks(max(1, math.ceil(len(where[0]) / chunk_tokens)), dist)
    logprobs, values = chunked_scores(
        hidden[where], targets[where], lm_head, temperature, chunk_tokens, entropy, chunks
    )
    frame = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device)
    return TokenScores(
        logprobs=frame.index_put(where, logprobs),
        entropy=frame.index_put(where, values) if values is not None else None,
    )
