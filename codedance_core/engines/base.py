"""The one interface every generation backend implements, and the stop-string rule they share.

The rollout loop, filtering, synthesis and evaluation all ask the same question: "continue these
conversations". They should not care whether the answer comes from transformers in-process, vLLM
on a GPU worker, or an HTTP endpoint. So a request carries both forms of a conversation, token
ids + images for local engines and messages for HTTP ones, and a completion always carries text,
finish reason and the stop string that matched; token ids and their log-probs whenever the
backend can give them (local engines always do).

Stop strings follow one rule everywhere: generation ends right after the first stop string, and
the stop string is KEPT in the text and in the token ids. The loop stops at `</code>` to run code
the moment it is written, and the trajectory must contain the `</code>` the model produced.

Log-probs are those of the sampled tokens under the sampling distribution before top-p
truncation: log_softmax(logits / temperature), or of the raw logits when greedy. That is what a
policy-gradient trainer recomputes, so old and new log-probs compare like for like.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from PIL import Image

if TYPE_CHECKING:  # models.inputs imports torch; HTTP-only processes never need it
    from codedance_core.models.inputs import EncodedPrompt

FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one batch. temperature 0 means greedy."""

    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if any(not stop for stop in self.stop):
            raise ValueError("stop strings must be non-empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class GenerationRequest:
    """One conversation to continue.

    `token_ids`: the prompt as the model reads it (image pads expanded), for local engines; when
    None they encode `messages` with the model's chat template. `messages`: OpenAI-style
    {role, content} where content is a string or parts; an image part `{"type": "image"}` takes
    the next of `images`. HTTP engines need `messages`.

    `sample_key`: which sample this is, e.g. (prompt id, sample index, turn). Engines that seed
    each request on its own (vLLM) derive the request's seed from the batch seed and this key, so
    the samples of one prompt differ and each is reproducible whatever batch it lands in.
    """

    token_ids: list[int] | None = None
    images: list[Image.Image] = field(default_factory=list)
    messages: list[dict] | None = None
    sample_key: tuple[str | int, ...] | None = None

    @classmethod
    def from_prompt(cls, prompt: EncodedPrompt) -> GenerationRequest:
        return cls(token_ids=list(prompt.token_ids), images=list(prompt.images))


@dataclass
class Completion:
    """What came back for one request."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    stop_string: str | None = None
    error: str | None = None

    @classmethod
    def failed(cls, reason: str) -> Completion:
        """A completion that records why this request produced nothing (the batch goes on)."""
        return cls(text="", finish_reason="error", error=reason)


class GenerationEngine(abc.ABC):
    """Continue a batch of conversations. Implementations never raise for one bad request: that
    request's completion has finish_reason 'error' and the reason in `error`."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        """Blocking generation; completions in request order."""

    async def agenerate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams
    ) -> list[Completion]:
        """Async generation; local engines run `generate` in a worker thread so the event loop
        (sandbox calls, other trajectories) keeps moving while the model works."""
        return await asyncio.to_thread(self.generate, list(requests), params)

    def close(self) -> None:
        """Release resources (HTTP connections, GPU memory)."""


def first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """(end index, stop string) of the stop occurrence that ends first in `text`; ties go to the
    longest (it started earlier). None when no stop string occurs."""
    best: tuple[int, int, str] | None = None
    for stop in stops:
        start = text.find(stop)
        if start < 0:
            continue
        candidate = (start + len(stop), -len(stop), stop)
        if best is None or candidate < best:
            best = candidate
    return None if best is None else (best[0], best[2])


def cut_at_stop(
    token_ids: Sequence[int], decode: Callable[[Sequence[int]], str], stops: Sequence[str]
) -> tuple[int, str, str] | None:
    """Where a token sequence must end for the first stop string it contains.

    Returns (number of tokens to keep, text up to and including the stop string, the stop string),
    or None. The kept tokens are the shortest prefix whose text contains a stop string (binary
    search: containment only grows with the prefix), so the stop string's last token is kept even
    when that token also carries text beyond it; that extra text is cut from `text` only.
    """
    if not stops:
        return None
    full = first_stop(decode(token_ids), stops)
    if full is None:
        return None
    low, high = 1, len(token_ids)
    while low < high:
        middle = (low + high) // 2
        if first_stop(decode(token_ids[:middle]), stops) is None:
            low = middle + 1
        else:
            high = middle
    prefix_text = decode(token_ids[:low])
    end, stop = first_stop(prefix_text, stops)  # type: ignore[misc]  # non-None: prefix contains a stop
    return low, prefix_text[:end], stop
