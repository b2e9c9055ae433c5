"""A hand-written decode loop for Qwen2.5-VL's language model over a static KV cache.

`model.generate` costs the tiny model far more than its arithmetic: per token it rebuilds the
model inputs and the attention mask, runs every `nn.Module` wrapper and hook, and grows a
`DynamicCache` by concatenation (copying the whole cache every step). On a 2-layer model that is
almost all of a code turn's time. Here the prompt is prefilled by the model's own forward (so the
vision tower, the image embeddings and M-RoPE's 3-D positions are exactly the model's), its keys
and values are copied once into preallocated buffers, and each new token then runs a short list
of tensor ops against the model's own weights, read fresh every call (a training step between
rollouts is seen at once).

What `generate` does, this does the same way: left-padded rows; each new token's position is the
row's last prompt position plus one per step, on all three M-RoPE axes; greedy is the argmax of
the logits (the tokens `generate` gives); sampling applies temperature, then top-p (transformers'
own warper), and draws from that distribution with one uniform number per row from the global
generator (seeded per call, as `generate` is), not the vocabulary-sized draw of
`torch.multinomial`. Rows that finished are dropped from the batch once half of it has, and on
CPU the per-token steps run on one thread (`threads`): their ops are too small to share.

A row can hand back its keys and values (`Prefix`) for its conversation's next turn, which then
continues from them (`decode(continued=...)`): only the tokens added since go through the layers.

`supports(model)` says whether a model is one this loop knows: a Qwen2.5-VL (or Qwen2-VL) whose
text layers are the standard ones, without sliding-window attention.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import DynamicCache, TopPLogitsWarper

from codedance_core.engines.decode_layers import FUSE_MAX_BYTES, LayerWeights, forward, layer_weights, sample

# Decides, for the rows whose latest token may end the turn, which rows end: (row indices into the
# original batch, the generated tokens so far as a (rows, steps) tensor) -> bool tensor per row.
StopCheck = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def supports(model: torch.nn.Module) -> bool:
    """Whether `decode` can run `model`: Qwen2(.5)-VL text layers, full attention, no sliding window."""
    language = getattr(getattr(model, "model", None), "language_model", None)
    if language is None or not hasattr(language, "layers") or not hasattr(model, "lm_head"):
        return False
    config = language.config
    if getattr(config, "use_sliding_window", False) or config._attn_implementation not in ("sdpa", "eager"):
        return False
    layer = language.layers[0]
    attention = getattr(layer, "self_attn", None)
    return (
        attention is not None
        and all(hasattr(attention, name) for name in ("q_proj", "k_proj", "v_proj", "o_proj"))
        and all(hasattr(layer.mlp, name) for name in ("gate_proj", "up_proj", "down_proj"))
    )


@dataclass
class Prefix:
    """A conversation's keys and values, kept after a turn so the next turn prefills only what was
    added since (the tool's result): `tokens` are those the cache holds (the prompt and all but
    the last generated token), `next_position` the M-RoPE position (3 axes) of the token after them."""

    tokens: list[int]
    keys: list[torch.Tensor]  # per layer (kv_heads, len(tokens), head_dim)
    values: list[torch.Tensor]
    next_position: torch.Tensor


@dataclass
class Decoded:
    """Per row of the batch: the generated tokens and their log-probs, up to and including the
    token that finished the row (all `max_new_tokens` when none did), and the row's `Prefix` when
    one was asked for."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    prefixes: list[Prefix | None]


@contextmanager
def _cpu_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` intra-op threads (0: unchanged); the setting is the calling thread's."""
    previous = torch.get_num_threads()
    if threads and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads and threads != previous:
            torch.set_num_threads(previous)


class _Batch:
    """The live rows of one decode: their KV buffers, attention mask and rotary tables."""

    def __init__(
        self,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        mask: torch.Tensor,
        last: torch.Tensor,
        steps: int,
        rotary: torch.nn.Module,
    ) -> None:
        self.keys, self.values = keys, values  # per layer (rows, kv_heads, slots, head_dim)
        self.mask = mask  # (rows, 1, 1, slots): 0 where a slot may be attended, -inf elsewhere
        self.width = mask.shape[-1] - steps  # slots before the first new token
        self.last = last  # (3, rows): each row's last prompt position
        # New token i of a row sits at the row's last prompt position + 1 + i on every axis.
        positions = last[:, :, None] + 1 + torch.arange(steps, device=last.device)  # (3, rows, steps)
        self.cos, self.sin = rotary(keys[0], positions)  # (rows, steps, head_dim)
        self.rows = torch.arange(mask.shape[0], device=mask.device)  # each live row's index in the batch
        self.prefixes: dict[int, Prefix] = {}

    def save(self, local: int, tokens: list[int], fed: int) -> None:
        """Keep row `local`'s keys and values: its prompt's and those of its first `fed` new tokens."""
        prompt = (self.mask[local, 0, 0, : self.width] == 0).nonzero().flatten()
        slots = torch.cat([prompt, torch.arange(self.width, self.width + fed, device=prompt.device)])
        self.prefixes[int(self.rows[local])] = Prefix(
            tokens,
            [k[local].index_select(1, slots) for k in self.keys],
            [v[local].index_select(1, slots) for v in self.values],
            self.last[:, local] + 1 + fed,
        )

    def keep(self, live: torch.Tensor) -> None:
        """Drop the finished rows (`live` is a bool mask over the current rows)."""
        index = live.nonzero().flatten()
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        self.mask, self.cos, self.sin = self.mask[index], self.cos[index], self.sin[index]
        self.rows, self.last = self.rows[index], self.last[:, index]


class StaticDecoder:
    """Generates with a Qwen2.5-VL model: its forward for the prompt, `_step` for each token."""

    def __init__(self, model: torch.nn.Module, threads: int = 1) -> None:
        self.model = model
        self.threads = threads
        self.language = model.model.language_model
        config = self.language.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.shape = (self.heads, self.kv_heads, self.head_dim)
        weights = [p for layer in self.language.layers for p in layer.parameters()]
        self.fuse = sum(p.numel() * p.element_size() for p in weights) <= FUSE_MAX_BYTES

    @torch.inference_mode()
    def decode(
        self,
        inputs: dict | None,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        eos_ids: list[int],
        may_stop: torch.Tensor | None = None,
        ends: StopCheck | None = None,
        continued: list[tuple[Prefix, list[int]]] | None = None,
        keep: list[list[int] | None] | None = None,
    ) -> Decoded:
        """Continue a batch: the left-padded model `inputs` (ids, mask, image data), or, with
        `continued`, each row's kept `Prefix` and the text tokens added after it (`inputs` unused).

        `may_stop`: a boolean per vocabulary entry, the tokens that may complete a stop string;
        `ends(rows, generated)` then says which of the rows that wrote one really end (rows index
        the batch; generated is their tokens so far). `keep[i]`: row i's prompt tokens when its
        `Prefix` should come back for a later turn. Temperature 0 is greedy."""
        layers = layer_weights(self.language, self.fuse)
        if continued is not None:
            logits, batch = self._continue(continued, max_new_tokens, layers)
        else:
            assert inputs is not None
            position_ids = self._prompt_positions(inputs)
            cache = DynamicCache(config=self.model.config)
            output = self.model(
                **inputs, position_ids=position_ids, past_key_values=cache, use_cache=True, logits_to_keep=1
            )
            batch = self._batch(cache, inputs["attention_mask"], position_ids[1:, :, -1], max_new_tokens)
            logits = output.logits[:, -1]
            del cache, output  # the prompt's keys and values live on in `batch` only
        # A step's ops take microseconds: waking other threads for them costs more than it saves.
        with _cpu_threads(self.threads if logits.device.type == "cpu" else 0):
            tokens, logprobs, lengths = self._loop(
                logits, batch, layers, max_new_tokens, temperature, top_p, eos_ids, may_stop, ends, keep
            )
        if keep is not None:
            for local, row in enumerate(batch.rows.tolist()):
                if keep[row] is not None and row not in batch.prefixes:
                    batch.save(local, keep[row] + tokens[row][: lengths[row] - 1], lengths[row] - 1)
        return Decoded(
            [row[:n] for row, n in zip(tokens, lengths, strict=True)],
            [row[:n] for row, n in zip(logprobs, lengths, strict=True)],
            [batch.prefixes.get(row) for row in range(len(tokens))],
        )

    def _loop(
        self,
        logits: torch.Tensor,
        batch: _Batch,
        layers: list[LayerWeights],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        eos_ids: list[int],
        may_stop: torch.Tensor | None,
        ends: StopCheck | None,
        keep: list[list[int] | None] | None,
    ) -> tuple[list[list[int]], list[list[float]], list[int]]:
        """Sample, check for ends, step: each row's tokens, log-probs and length (all max_new_tokens long)."""
        device, size = logits.device, logits.shape[0]
        # One lookup per step finds the rows that may be done: an end-of-turn token, or (checked
        # further only then) a token that can complete a stop string.
        special = torch.zeros(logits.shape[-1], dtype=torch.bool, device=device)
        special[torch.tensor(sorted(set(eos_ids)), dtype=torch.long, device=device)] = True
        eos = special.clone()
        if may_stop is not None:
            special[: may_stop.shape[0]] |= may_stop.to(device)
            special[may_stop.shape[0] :] = True  # rows past the tokenizer: checked the slow way
        generated = torch.zeros((size, max_new_tokens), dtype=torch.long, device=device)
        logprobs = torch.zeros((size, max_new_tokens), dtype=torch.float32, device=device)
        lengths = torch.full((size,), max_new_tokens, dtype=torch.long, device=device)
        live = torch.ones(size, dtype=torch.bool, device=device)  # per row of the current batch
        warper = TopPLogitsWarper(top_p) if top_p < 1 and temperature > 0 else None
        for step in range(max_new_tokens):
            tokens, token_logprobs = sample(logits, temperature, warper)
            if batch.rows.numel() == size:
                generated[:, step] = tokens
                logprobs[:, step] = token_logprobs
            else:
                generated[batch.rows, step] = tokens
                logprobs[batch.rows, step] = token_logprobs
            hits = special[tokens] & live
            if hits.any():
                ending = hits & eos[tokens]
                candidates = (hits & ~ending).nonzero().flatten()
                if candidates.numel() and ends is not None:
                    rows = batch.rows[candidates]
                    ending[candidates] = ends(rows, generated[rows, : step + 1])
                if ending.any():
                    lengths[batch.rows[ending]] = step + 1
                    live &= ~ending
                    if not live.any():
                        break
                    # Finished rows go on computing (their tokens are ignored) until half the
                    # batch is done: dropping rows copies every cache, which pays only in bulk.
                    if live.sum() * 2 <= live.numel():
                        self._drop_finished(batch, live, generated, lengths, keep)
                        tokens, live = tokens[live], live[live]
            if step + 1 < max_new_tokens:
                logits = self._step(tokens, batch, layers, step)
        return generated.tolist(), logprobs.tolist(), lengths.tolist()

    @staticmethod
    def _drop_finished(
        batch: _Batch,
        live: torch.Tensor,
        generated: torch.Tensor,
        lengths: torch.Tensor,
        keep: list[list[int] | None] | None,
    ) -> None:
        if keep is not None:
            for local in (~live).nonzero().flatten().tolist():
                row = int(batch.rows[local])
                if keep[row] is not None:
                    fed = int(lengths[row]) - 1
                    batch.save(local, keep[row] + generated[row, :fed].tolist(), fed)
        batch.keep(live)

    def _prompt_positions(self, inputs: dict) -> torch.Tensor:
        """The (4, rows, width) positions `generate` gives the prompt: text positions, then M-RoPE's three axes."""
        mask = inputs["attention_mask"]
        text = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        if inputs.get("image_grid_thw") is not None and inputs.get("mm_token_type_ids") is not None:
            axes, deltas = self.model.model.get_rope_index(
                inputs["input_ids"],
                mm_token_type_ids=inputs["mm_token_type_ids"],
                image_grid_thw=inputs["image_grid_thw"],
                attention_mask=mask,
            )
        else:
            axes, deltas = text[None].expand(3, -1, -1), torch.zeros((mask.shape[0], 1), dtype=torch.long)
        self.model.model.rope_deltas = deltas.to(mask.device)  # as `generate` leaves it
        return torch.cat([text[None], axes.to(text.device)], dim=0)

    def _batch(
        self, cache: DynamicCache, attention_mask: torch.Tensor, last: torch.Tensor, steps: int
    ) -> _Batch:
        """Static buffers holding the prompt's keys and values, with room for `steps` new tokens."""
        size, width = attention_mask.shape
        keys, values = [], []
        for layer in cache.layers:
            shape = (size, self.kv_heads, width + steps, self.head_dim)
            key = layer.keys.new_zeros(shape)
            value = layer.values.new_zeros(shape)
            key[:, :, :width] = layer.keys
            value[:, :, :width] = layer.values
            keys.append(key)
            values.append(value)
        mask = keys[0].new_zeros((size, 1, 1, width + steps))
        mask[:, 0, 0, :width].masked_fill_(attention_mask == 0, float("-inf"))
        return _Batch(keys, values, mask, last, steps, self.language.rotary_emb)

    def _continue(
        self, continued: list[tuple[Prefix, list[int]]], steps: int, layers: list[LayerWeights]
    ) -> tuple[torch.Tensor, _Batch]:
        """Kept prefixes plus their new tokens, run through the layers as one block: the logits
        after each row's last token, and the batch ready for `steps` new tokens.

        Slots: the prefixes right-aligned in the first `held` slots, then the new tokens
        right-aligned in the next `added` (padding between them is masked), then the new tokens'."""
        first = continued[0][0]
        device, dtype = first.keys[0].device, first.keys[0].dtype
        size = len(continued)
        held = max(len(prefix.tokens) for prefix, _ in continued)
        added = max(len(suffix) for _, suffix in continued)
        width = held + added
        keys = [
            first.keys[0].new_zeros((size, self.kv_heads, width + steps, self.head_dim)) for _ in first.keys
        ]
        values = [torch.zeros_like(key) for key in keys]
        valid = torch.zeros((size, width), dtype=torch.bool, device=device)
        tokens = torch.zeros((size, added), dtype=torch.long, device=device)
        positions = torch.zeros((3, size, added), dtype=torch.long, device=device)
        for row, (prefix, suffix) in enumerate(continued):
            length = len(prefix.tokens)
            for layer, (key, value) in enumerate(zip(prefix.keys, prefix.values, strict=True)):
                keys[layer][row, :, held - length : held] = key
                values[layer][row, :, held - length : held] = value
            valid[row, held - length : held] = True
            valid[row, width - len(suffix) :] = True
            tokens[row, added - len(suffix) :] = torch.tensor(suffix, dtype=torch.long, device=device)
            start = prefix.next_position.to(device)[:, None]
            positions[:, row, added - len(suffix) :] = start + torch.arange(len(suffix), device=device)
        # Block query i (slot held + i) sees every valid slot up to its own; a padding query sees
        # itself only, so that no row of the softmax is empty.
        own = torch.arange(held, width, device=device)[:, None]
        slots = torch.arange(width, device=device)[None, :]
        allowed = (valid[:, None, :] & (slots <= own)[None]) | (slots == own)[None]
        block_mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(
            ~allowed, float("-inf")
        )
        cos, sin = self.language.rotary_emb(keys[0], positions)
        logits = forward(
            self.language,
            self.model.lm_head,
            self.shape,
            tokens,
            keys,
            values,
            block_mask[:, None],
            cos,
            sin,
            held,
            layers,
        )
        mask = keys[0].new_zeros((size, 1, 1, width + steps))
        mask[:, 0, 0, :width].masked_fill_(~valid, float("-inf"))
        batch = _Batch(keys, values, mask, positions[:, :, -1], steps, self.language.rotary_emb)
        return logits, batch

    def _step(
        self, tokens: torch.Tensor, batch: _Batch, layers: list[LayerWeights], step: int
    ) -> torch.Tensor:
        """Feed new token `step` of each live row; the next logits, (rows, vocab)."""
        slot = batch.width + step
        return forward(
            self.language,
            self.model.lm_head,
            self.shape,
            tokens[:, None],
            batch.keys,
            batch.values,
            batch.mask[..., : slot + 1],
            batch.cos[:, step : step + 1],
            batch.sin[:, step : step + 1],
            slot,
            layers,
        )
