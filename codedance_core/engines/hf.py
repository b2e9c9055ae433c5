"""Generation with transformers, in-process, on CPU or GPU: the engine of the tiny profile and the server.

Batches are left-padded (the new tokens of every row line up at the right edge) and sorted by
length before chunking, so padding stays small. Sampling goes through `model.generate` (it knows
Qwen2.5-VL's M-RoPE bookkeeping), with two hooks of ours:
- a logits processor that applies temperature and top-p itself, recording log_softmax(logits / T)
  of the step, so the log-prob of the token `generate` then samples is exact and costs one
  (batch,) gather per step instead of keeping (batch, steps, vocab) scores;
- a stopping criterion that gathers those log-probs and ends each row on an end-of-turn token or
  the first stop string, so a row that wrote `</code>` stops at once while the others go on.
The model's own generation_config (a real Qwen checkpoint ships temperature 0.1, top_k 1,
repetition_penalty 1.05) is overridden entirely: sampling is what `SamplingParams` says.

Qwen2.5-VL keeps `rope_deltas` on the module during generation, so one model runs one batch at a
time: the lock belongs to the model, shared by every engine over it; concurrency comes from
batching, not threads.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor, StoppingCriteria, TopPLogitsWarper

from codedance_core.config.model import EngineConfig
from codedance_core.engines.base import (
    Completion,
    GenerationEngine,
    GenerationRequest,
    SamplingParams,
    cut_at_stop,
    first_stop,
)
from codedance_core.models.bundle import ModelBundle, load_model_bundle
from codedance_core.models.images import ImageDecodeError
from codedance_core.models.inputs import EncodedPrompt

_MODEL_LOCKS: weakref.WeakKeyDictionary[torch.nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: torch.nn.Module) -> threading.Lock:
    """The lock serialising generation on `model` (one per model object)."""
    with _LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(model, threading.Lock())


class _StepLog:
    """Per-row state of one `generate` call, shared by the warper and the stopping criterion."""

    def __init__(self, rows: int) -> None:
        self.step_logprobs: torch.Tensor | None = None
        self.logprobs: list[list[float]] = [[] for _ in range(rows)]
        self.finished = [False] * rows


class _RecordingWarper(LogitsProcessor):
    """Temperature and top-p, recording the pre-top-p log-probs of the step."""

    def __init__(self, log: _StepLog, params: SamplingParams) -> None:
        self.log = log
        self.params = params
        self.top_p = TopPLogitsWarper(params.top_p) if params.top_p < 1 and not params.greedy else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float()
        if not self.params.greedy:
            scores = scores / self.params.temperature
        self.log.step_logprobs = torch.log_softmax(scores, dim=-1)
        return self.top_p(input_ids, scores) if self.top_p is not None else scores


class _TurnEnd(StoppingCriteria):
    """Collects the sampled tokens' log-probs and ends rows on end-of-turn tokens or stop strings."""

    def __init__(
        self, log: _StepLog, prompt_width: int, eos_ids: Sequence[int], stops: Sequence[str], decode
    ):
        self.log = log
        self.prompt_width = prompt_width
        self.eos_ids = set(eos_ids)
        self.stops = list(stops)
        self.decode = decode
        # A stop string of B bytes fits in the last B tokens (a token is at least one byte).
        self.window = max((len(stop.encode()) for stop in stops), default=0) + 1

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        new_tokens = input_ids[:, -1]
        picked = self.log.step_logprobs.gather(1, new_tokens[:, None]).squeeze(1).tolist()
        tokens = new_tokens.tolist()
        for row, token in enumerate(tokens):
            if self.log.finished[row]:
                continue
            self.log.logprobs[row].append(picked[row])
            if token in self.eos_ids or (self.stops and self._ends_with_stop(input_ids[row])):
                self.log.finished[row] = True
        return torch.tensor(self.log.finished, dtype=torch.bool, device=input_ids.device)

    def _ends_with_stop(self, row_ids: torch.Tensor) -> bool:
        tail = row_ids[max(self.prompt_width, row_ids.shape[0] - self.window) :].tolist()
        return first_stop(self.decode(tail), self.stops) is not None


class HFEngine(GenerationEngine):
    """transformers generation over a loaded `ModelBundle`."""

    def __init__(self, bundle: ModelBundle, max_batch_size: int = 64) -> None:
        self.bundle = bundle
        self.max_batch_size = max_batch_size
        self._lock = model_lock(bundle.model)

    @classmethod
    def from_config(cls, config: EngineConfig) -> HFEngine:
        bundle = load_model_bundle(config.model, device=config.device, dtype=config.dtype)
        return cls(bundle, max_batch_size=config.max_batch_size)

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        completions: list[Completion | None] = [None] * len(requests)
        encoded: list[tuple[int, EncodedPrompt]] = []
        for index, request in enumerate(requests):
            try:
                encoded.append((index, self._encode(request)))
            except (ValueError, KeyError, ImageDecodeError) as error:
                completions[index] = Completion.failed(f"cannot encode request: {error}")
        encoded.sort(key=lambda item: len(item[1].token_ids))
        with self._lock:
            for start in range(0, len(encoded), self.max_batch_size):
                chunk = encoded[start : start + self.max_batch_size]
                for (index, _), completion in zip(chunk, self._generate_batch([p for _, p in chunk], params)):
                    completions[index] = completion
        return [completion for completion in completions if completion is not None]

    def _encode(self, request: GenerationRequest) -> EncodedPrompt:
        if request.token_ids is not None:
            return EncodedPrompt(list(request.token_ids), list(request.images))
        if request.messages is None:
            raise ValueError("request has neither token_ids nor messages")
        return self.bundle.encode_messages(request.messages, request.images)

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[EncodedPrompt], params: SamplingParams) -> list[Completion]:
        inputs = self.bundle.model_inputs(prompts)
        width = inputs["input_ids"].shape[1]
        log = _StepLog(len(prompts))
        decode = self._decode
        criterion = _TurnEnd(log, width, self.bundle.eos_token_ids, params.stop, decode)
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=not params.greedy,
            temperature=1.0,
            top_p=1.0,
            # 0 disables top-k; left None, a checkpoint's own top_k (Qwen ships 1) would leak in.
            top_k=None if params.greedy else 0,
            repetition_penalty=1.0,
            eos_token_id=self.bundle.eos_token_ids,
            pad_token_id=self.bundle.pad_token_id,
            return_dict_in_generate=True,
        )
        with torch.random.fork_rng(devices=self._rng_devices(), enabled=params.seed is not None):
            if params.seed is not None:
                torch.manual_seed(params.seed)
            output = self.bundle.model.generate(
                **inputs,
                generation_config=config,
                logits_processor=[_RecordingWarper(log, params)],
                stopping_criteria=[criterion],
            )
        new_tokens = output.sequences[:, width:].tolist()
        return [self._completion(new_tokens[row], log.logprobs[row], params) for row in range(len(prompts))]

    def _completion(self, generated: list[int], logprobs: list[float], params: SamplingParams) -> Completion:
        token_ids = generated[: len(logprobs)]
        eos_ids = set(self.bundle.eos_token_ids)
        cut = cut_at_stop(token_ids, self._decode, params.stop)
        if cut is not None:
            kept, text, stop = cut
            return Completion(text, token_ids[:kept], logprobs[:kept], "stop", stop)
        if token_ids and token_ids[-1] in eos_ids:
            return Completion(self._decode(token_ids[:-1]), token_ids, logprobs, "stop")
        return Completion(self._decode(token_ids), token_ids, logprobs, "length")

    def _decode(self, token_ids: Sequence[int]) -> str:
        return self.bundle.tokenizer.decode(list(token_ids), skip_special_tokens=True)

    def _rng_devices(self) -> list[int]:
        device = self.bundle.device
        return [device.index or 0] if device.type == "cuda" else []
