"""The base of every stage config: strict, typed, and with a stable digest.

Strictness is the point: an unknown key or a bad value must fail when the config is loaded,
with the field's dotted path in the message, before any work starts. The digest is what cache
keys are built from, so it depends only on the config's values, never on key order or on
how the YAML was written.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown fields and re-validates on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    def digest(self) -> str:
        """A stable sha256 of the config's values (key order and formatting do not matter)."""
        return config_digest(self)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same values always give the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_digest(model: BaseModel) -> str:
    """sha256 hex digest of a model's canonical JSON dump."""
    payload = canonical_json(model.model_dump(mode="json"))
    return hashlib.sha256(payload.encode()).hexdigest()
