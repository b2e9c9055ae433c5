"""Generation with transformers, in-process, on CPU or GPU: the engine of the tiny profile and the server.

Batches are left-padded (the new tokens of every row line up at the right edge) and sorted by
length before chunking, so padding stays small. By default a Qwen2(.5)-VL decodes with the engine's
own loop over a static KV cache (`decode.py`: the model's forward for the prompt, a short list of
tensor ops per token; several times faster than `generate` on a small model), and a conversation's
keys and values are kept between its turns (`prefix_cache.py`), so a tool turn prefills only the
tool's result. `decode="generate"` (EngineConfig.hf_decode) keeps the `model.generate` path, which
any other model takes too; it has two hooks of ours:
- a logits processor that applies temperature and top-p itself, recording log_softmax(logits / T)
  of the step, so the log-prob of the token `generate` then samples is exact and costs one
  (batch,) gather per step instead of keeping (batch, steps, vocab) scores;
- a stopping criterion that gathers those log-probs and ends each row on an end-of-turn token or
  the first stop string, so a row that wrote `</code>` stops at once while the others go on.
The model's own generation_config (a real Qwen checkpoint ships temperature 0.1, top_k 1,
repetition_penalty 1.05) is overridden entirely: sampling is what `SamplingParams` says.

Work that batching cannot share is not repeated:
- the vision tower runs once per image object, not once per turn and sample: a multi-turn batch
  sends every trajectory's question image again with each turn (and the samples of one prompt
  share it), and re-encoding those was over half of a rollout's generation time on the tiny
  model. `VisionEmbeddingCache` keeps the tower's outputs, keyed by image identity and by the
  tower's weights (parameter storage and in-place version counters), so a training step between
  rollouts invalidates them;
- the stop-string check decodes only rows whose newest token can end a stop string (its text
  holds a stop's last character, or a partial UTF-8 byte); the others are skipped by a lookup.

Qwen2.5-VL keeps `rope_deltas` on the module during generation, so one model runs one batch at a
time: the lock belongs to the model, shared by every engine over it; concurrency comes from
batching, not threads.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import GenerationConfig, LogitsProcessor, StoppingCriteria, TopPLogitsWarper
from transformers.modeling_outputs import BaseModelOutputWithPooling

from codedance_core.config.model import DecodeLoop, EngineConfig
from codedance_core.engines.base import (
    Completion,
    GenerationEngine,
    GenerationRequest,
    SamplingParams,
    cut_at_stop,
    first_stop,
)
from codedance_core.engines.decode import StaticDecoder, supports
from codedance_core.engines.prefix_cache import PrefixCache
from codedance_core.models.bundle import ModelBundle, load_model_bundle
from codedance_core.models.images import ImageDecodeError
from codedance_core.models.inputs import EncodedPrompt

_MODEL_LOCKS: weakref.WeakKeyDictionary[torch.nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: torch.nn.Module) -> threading.Lock:
    """The lock serialising generation on `model` (one per model object)."""
    with _LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(model, threading.Lock())


class VisionEmbeddingCache:
    """The vision tower's output per image object, valid while the tower's weights are unchanged.

    Entries are keyed by `id(image)` and hold a weak reference (a new image reusing a dead one's id
    is never served its embeddings); an entry is dropped as soon as its image is garbage collected,
    so memory follows the images the caller still holds. `max_items` bounds it regardless.
    """

    def __init__(self, max_items: int = 4096) -> None:
        self.max_items = max_items
        self.hits = 0
        self.misses = 0
        self._entries: dict[int, tuple[weakref.ref, torch.Tensor]] = {}
        self._weights_key: tuple | None = None

    def embeddings(
        self,
        model: torch.nn.Module,
        images: Sequence[Image.Image],
        pixel_values: torch.Tensor,
        grid: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """One embedding tensor per image occurrence; `pixel_values` and `grid` are the collated
        inputs for exactly `images` (in order); only images not seen before go through the tower."""
        key = _weights_key(model)
        if key != self._weights_key:
            self._entries.clear()
            self._weights_key = key
        pixels = torch.split(pixel_values, grid.prod(dim=-1).tolist())
        missing: dict[int, int] = {}  # id(image) -> first occurrence
        for index, image in enumerate(images):
            if self._get(image) is None and id(image) not in missing:
                missing[id(image)] = index
        if missing:
            order = list(missing.values())
            encoded = model.get_image_features(
                torch.cat([pixels[i] for i in order]), grid[order], return_dict=True
            ).pooler_output
            if len(self._entries) + len(order) > self.max_items:
                self._entries.clear()
            for index, embedding in zip(order, encoded, strict=True):
                self._put(images[index], embedding)
        self.misses += len(missing)
        self.hits += len(images) - len(missing)
        return tuple(self._get(image) for image in images)  # type: ignore[misc]  # all present now

    def _get(self, image: Image.Image) -> torch.Tensor | None:
        entry = self._entries.get(id(image))
        return entry[1] if entry is not None and entry[0]() is image else None

    def _put(self, image: Image.Image, embedding: torch.Tensor) -> None:
        image_id = id(image)
        entries = self._entries

        def forget(reference: weakref.ref) -> None:
            if entries.get(image_id, (None,))[0] is reference:
                del entries[image_id]

        entries[image_id] = (weakref.ref(image, forget), embedding)


def _weights_key(model: torch.nn.Module) -> tuple:
    """Changes whenever the vision tower's weights may have: new storage, or an in-place update
    (an optimizer step or `load_state_dict` bumps each tensor's version counter)."""
    visual = model.model.visual
    return tuple((p.data_ptr(), p._version) for p in visual.parameters())


_VISION_CACHES: weakref.WeakKeyDictionary[torch.nn.Module, VisionEmbeddingCache] = weakref.WeakKeyDictionary()


def vision_cache(model: torch.nn.Module) -> VisionEmbeddingCache:
    """The vision-embedding cache of `model`, shared by every engine over it (like its lock)."""
    with _LOCKS_GUARD:
        return _VISION_CACHES.setdefault(model, VisionEmbeddingCache())


_STOP_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stop_candidates(tokenizer, stops: Sequence[str]) -> torch.Tensor:
    """Boolean mask over the vocabulary: tokens that can be the last token of a stop string.

    Such a token's own text holds a stop's last character, or is a fragment of a multi-byte
    character (decoded alone as U+FFFD) that may complete one. Computed once per tokenizer and
    stop set, with one batched decode of the vocabulary.
    """
    per_tokenizer = _STOP_TOKENS.setdefault(tokenizer, {})
    key = tuple(sorted(set(stops)))
    if key not in per_tokenizer:
        last_chars = {stop[-1] for stop in key}
        size = max(len(tokenizer), max(tokenizer.get_vocab().values(), default=0) + 1)
        texts = tokenizer.batch_decode([[token] for token in range(size)], skip_special_tokens=True)
        per_tokenizer[key] = torch.tensor(
            [("\ufffd" in text) or any(char in text for char in last_chars) for text in texts],
            dtype=torch.bool,
        )
    return per_tokenizer[key]


class _StepLog:
    """Per-row state of one `generate` call, shared by the warper and the stopping criterion.

    Log-probs are kept as one (rows,) tensor per step and cut per row at the end: no Python work
    per row per step."""

    def __init__(self, rows: int, device: torch.device) -> None:
        self.step_logprobs: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []
        self.finished = torch.zeros(rows, dtype=torch.bool, device=device)
        self.lengths = torch.zeros(rows, dtype=torch.long, device=device)

    def row_logprobs(self) -> list[list[float]]:
        """Each row's log-probs, up to and including the token that finished it."""
        if not self.steps:
            return [[] for _ in range(self.finished.shape[0])]
        table = torch.stack(self.steps, dim=1).tolist()
        return [row[:length] for row, length in zip(table, self.lengths.tolist(), strict=True)]


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


class _StopStrings:
    """Which rows' newest token completes a stop string: a vocabulary lookup first, then a decode
    of the row's last few generated tokens for the few rows the lookup lets through."""

    def __init__(self, tokenizer, stops: Sequence[str], device: torch.device) -> None:
        self.tokenizer = tokenizer
        self.stops = list(stops)
        self.candidates = stop_candidates(tokenizer, stops).to(device)
        # A stop string of B bytes fits in the last B tokens (a token is at least one byte).
        self.window = max(len(stop.encode()) for stop in stops) + 1

    def may_end(self, tokens: torch.Tensor) -> torch.Tensor:
        known = tokens < self.candidates.shape[0]
        # a token beyond the tokenizer's vocabulary (padded embedding rows) is checked the slow way
        return torch.where(known, self.candidates[tokens.clamp(max=self.candidates.shape[0] - 1)], True)

    def ends(self, generated: Sequence[int]) -> bool:
        """Whether the generated tokens so far end with (contain, in their last tokens) a stop string."""
        tail = list(generated[-self.window :])
        return first_stop(self.tokenizer.decode(tail, skip_special_tokens=True), self.stops) is not None

    def ends_rows(self, rows: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        """`ends` for each row of a (rows, steps) tensor of generated tokens."""
        tails = generated[:, -self.window :].tolist()
        return torch.tensor([self.ends(tail) for tail in tails], dtype=torch.bool, device=generated.device)


class _TurnEnd(StoppingCriteria):
    """Collects the sampled tokens' log-probs and ends rows on end-of-turn tokens or stop strings."""

    def __init__(
        self, log: _StepLog, prompt_width: int, eos_ids: Sequence[int], stops: Sequence[str], tokenizer
    ):
        self.log = log
        self.prompt_width = prompt_width
        self.eos_ids = torch.tensor(sorted(set(eos_ids)), dtype=torch.long, device=log.finished.device)
        self.stops = _StopStrings(tokenizer, stops, log.finished.device) if stops else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        log = self.log
        new_tokens = input_ids[:, -1]
        log.steps.append(log.step_logprobs.gather(1, new_tokens[:, None]).squeeze(1))
        live = ~log.finished
        log.lengths += live.long()
        ending = live & torch.isin(new_tokens, self.eos_ids)
        if self.stops is not None:
            for row in (live & ~ending & self.stops.may_end(new_tokens)).nonzero().flatten().tolist():
                start = max(self.prompt_width, input_ids.shape[1] - self.stops.window)
                ending[row] = self.stops.ends(input_ids[row, start:].tolist())
        log.finished |= ending
        return log.finished.clone()


class HFEngine(GenerationEngine):
    """transformers generation over a loaded `ModelBundle`."""

    def __init__(
        self,
        bundle: ModelBundle,
        max_batch_size: int = 64,
        reuse_image_embeddings: bool = True,
        decode: DecodeLoop = "static",
        decode_threads: int = 1,
        reuse_prefixes: bool = True,
    ) -> None:
        self.bundle = bundle
        self.max_batch_size = max_batch_size
        self._lock = model_lock(bundle.model)
        self.vision_cache = vision_cache(bundle.model) if reuse_image_embeddings else None
        # The hand-written loop where it knows the model; `generate` otherwise, or when asked.
        static = decode == "static" and supports(bundle.model)
        self.decoder = StaticDecoder(bundle.model, threads=decode_threads) if static else None
        self.prefixes = (
            PrefixCache(bundle.model, bundle.image_token_id, max_items=4 * max_batch_size)
            if self.decoder is not None and reuse_prefixes
            else None
        )

    @classmethod
    def from_config(cls, config: EngineConfig) -> HFEngine:
        bundle = load_model_bundle(config.model, device=config.device, dtype=config.dtype)
        return cls(
            bundle,
            max_batch_size=config.max_batch_size,
            decode=config.hf_decode,
            decode_threads=config.hf_decode_threads,
            reuse_prefixes=config.hf_reuse_prefixes,
        )

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        completions: list[Completion | None] = [None] * len(requests)
        encoded: list[tuple[int, EncodedPrompt, tuple | None]] = []
        for index, request in enumerate(requests):
            try:
                encoded.append((index, self._encode(request), request.sample_key))
            except (ValueError, KeyError, ImageDecodeError) as error:
                completions[index] = Completion.failed(f"cannot encode request: {error}")
        encoded.sort(key=lambda item: len(item[1].token_ids))
        with self._lock:
            for start in range(0, len(encoded), self.max_batch_size):
                chunk = encoded[start : start + self.max_batch_size]
                prompts, keys = [p for _, p, _ in chunk], [k for _, _, k in chunk]
                for (index, _, _), completion in zip(chunk, self._generate_batch(prompts, params, keys)):
                    completions[index] = completion
        return [completion for completion in completions if completion is not None]

    def _encode(self, request: GenerationRequest) -> EncodedPrompt:
        if request.token_ids is not None:
            return EncodedPrompt(list(request.token_ids), list(request.images))
        if request.messages is None:
            raise ValueError("request has neither token_ids nor messages")
        return self.bundle.encode_messages(request.messages, request.images)

    @torch.inference_mode()
    def _generate_batch(
        self, prompts: list[EncodedPrompt], params: SamplingParams, keys: Sequence[tuple | None] = ()
    ) -> list[Completion]:
        if self.decoder is not None:
            return self._decode_batch(prompts, params, list(keys) or [None] * len(prompts))
        inputs = self._model_inputs(prompts)
        width = inputs["input_ids"].shape[1]
        log = _StepLog(len(prompts), inputs["input_ids"].device)
        criterion = _TurnEnd(log, width, self.bundle.eos_token_ids, params.stop, self.bundle.tokenizer)
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
        logprobs = log.row_logprobs()
        return [self._completion(new_tokens[row], logprobs[row], params) for row in range(len(prompts))]

    def _decode_batch(
        self, prompts: list[EncodedPrompt], params: SamplingParams, keys: list[tuple | None]
    ) -> list[Completion]:
        """The batch through the static-cache loop (`decode.py`), seeded as `generate` is; a batch
        of conversations whose previous turns' keys and values are kept prefills only their new tokens."""
        assert self.decoder is not None
        # (item, sample, turn) -> (item, sample): the turns of one conversation share it.
        conversations = [key[:-1] if key and len(key) > 1 else None for key in keys]
        continued = keep = None
        if self.prefixes is not None:
            continued = self.prefixes.take(conversations, [prompt.token_ids for prompt in prompts])
            keep = [list(p.token_ids) if key else None for p, key in zip(prompts, conversations, strict=True)]
        inputs = self._model_inputs(prompts) if continued is None else None
        stops = _StopStrings(self.bundle.tokenizer, params.stop, self.bundle.device) if params.stop else None
        with torch.random.fork_rng(devices=self._rng_devices(), enabled=params.seed is not None):
            if params.seed is not None:
                torch.manual_seed(params.seed)
            decoded = self.decoder.decode(
                inputs,
                max_new_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                eos_ids=self.bundle.eos_token_ids,
                may_stop=stops.candidates if stops else None,
                ends=stops.ends_rows if stops else None,
                continued=continued,
                keep=keep,
            )
        if self.prefixes is not None:
            pairs = zip(conversations, decoded.prefixes, strict=True)
            self.prefixes.put([(key, prefix) for key, prefix in pairs if key is not None and prefix is not None])
        return [
            self._completion(tokens, logprobs, params)
            for tokens, logprobs in zip(decoded.tokens, decoded.logprobs, strict=True)
        ]

    def _model_inputs(self, prompts: list[EncodedPrompt]) -> dict:
        """The collated batch, with the vision tower's outputs in place of pixels when caching:
        `generate` then runs the tower on no image it has seen before."""
        inputs = self.bundle.model_inputs(prompts)
        if self.vision_cache is None or "pixel_values" not in inputs:
            return inputs
        images = [image for prompt in prompts for image in prompt.images]
        embeddings = self.vision_cache.embeddings(
            self.bundle.model, images, inputs.pop("pixel_values"), inputs["image_grid_thw"]
        )
        inputs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=embeddings)}
        return inputs

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
