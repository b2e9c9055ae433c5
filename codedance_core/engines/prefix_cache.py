"""Keys and values kept between a conversation's turns, so a turn prefills only what was added.

A tool-loop turn's prompt is the previous turn's prompt, the turn's own tokens, the tool's result
and the next turn's header. Encoding it all again costs a forward over the whole conversation per
turn (on the tiny model, a third of a multi-turn batch's generation time); with the previous turn's
keys and values at hand, only the tool's result is new.

Entries are found by conversation, the request's `sample_key` without its last element (the
tool loop's key is (item, sample, turn)), and used only when their tokens are exactly the start of
the new prompt and what follows is text (an image would need the vision tower and M-RoPE's image
positions: such a turn is prefilled in full). An entry serves once, and all entries are dropped
when the model's weights change (a training step between rollouts), as the keys and values they
hold would be stale.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

import torch

from codedance_core.engines.decode import Prefix


def _weights_key(model: torch.nn.Module) -> tuple:
    """Changes whenever a weight may have: new storage or an in-place update (version counter)."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


class PrefixCache:
    """At most `max_items` kept prefixes of one model, by conversation."""

    def __init__(self, model: torch.nn.Module, image_token_id: int, max_items: int = 256) -> None:
        self.model = model
        self.image_token_id = image_token_id
        self.max_items = max_items
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, Prefix] = OrderedDict()
        self._weights: tuple | None = None

    def find(
        self, conversation: Hashable | None, token_ids: Sequence[int]
    ) -> tuple[Prefix, list[int]] | None:
        """The kept prefix of `conversation` and the tokens after it, when it can continue `token_ids`."""
        self.check_weights()
        return self._find(conversation, token_ids)

    def take(self, conversations: Sequence[Hashable | None], prompts: Sequence[Sequence[int]]) -> list | None:
        """(prefix, new tokens) for every prompt, removed from the cache, or None (nothing removed)
        unless all of them can continue: a batch is continued whole or prefilled whole."""
        self.check_weights()
        if len(set(conversations)) < len(conversations):  # one entry cannot continue two rows
            self.misses += len(conversations)
            return None
        found = [self._find(key, tokens) for key, tokens in zip(conversations, prompts, strict=True)]
        if not found or any(item is None for item in found):
            self.misses += len(found)
            return None
        for key in conversations:
            del self._entries[key]
        self.hits += len(found)
        return found

    def put(self, kept: Sequence[tuple[Hashable, Prefix]]) -> None:
        """Keep each conversation's prefix (the oldest entries go beyond `max_items`)."""
        self.check_weights()
        for conversation, prefix in kept:
            self._entries.pop(conversation, None)
            self._entries[conversation] = prefix
        while len(self._entries) > self.max_items:
            self._entries.popitem(last=False)

    def check_weights(self) -> None:
        """Drop every entry if the model's weights changed since the last look."""
        key = _weights_key(self.model)
        if key != self._weights:
            self._entries.clear()
            self._weights = key

    def _find(
        self, conversation: Hashable | None, token_ids: Sequence[int]
    ) -> tuple[Prefix, list[int]] | None:
        prefix = self._entries.get(conversation) if conversation is not None else None
        if prefix is None or len(token_ids) <= len(prefix.tokens):
            return None
        held = len(prefix.tokens)
        suffix = list(token_ids[held:])
        if list(token_ids[:held]) != prefix.tokens or self.image_token_id in suffix:
            return None
        return prefix, suffix
