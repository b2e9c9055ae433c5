"""The data layer: row schemas, parquet IO at any URI, validation with quarantine, the task suite.

- `schemas`: the RL row as released (both `prompt` and `messages` spellings), SFT and eval rows;
- `images`: encoding and the checks every image passes (bombs rejected from the header);
- `io`: polars/pyarrow readers and atomic writers through the artifact store;
- `validate`: `validate_file` streams a file and quarantines each bad row with one reason;
- `sources`: a stage's sources (local, s3://, hf://datasets/...) found with digests and merged into one file;
- `suite`: the procedural visual tasks (`codedance data synth`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codedance_core.lazy_exports import lazy_getattr

# Resolved on first use: a training worker that reads rows through `schemas` never imports polars.
_SOURCES = {
    "EvalItem": "schemas",
    "ImageRef": "schemas",
    "Message": "schemas",
    "RLRow": "schemas",
    "SFTRow": "schemas",
    "Reason": "validate",
    "RowChecker": "validate",
    "ValidationReport": "validate",
    "validate_file": "validate",
}
if TYPE_CHECKING:
    from codedance_core.data.schemas import EvalItem, ImageRef, Message, RLRow, SFTRow
    from codedance_core.data.validate import Reason, RowChecker, ValidationReport, validate_file

__getattr__ = lazy_getattr(__name__, globals(), _SOURCES)


def __dir__() -> list[str]:
    return sorted([*globals(), *_SOURCES])


__all__ = [
    "EvalItem",
    "ImageRef",
    "Message",
    "RLRow",
    "Reason",
    "RowChecker",
    "SFTRow",
    "ValidationReport",
    "validate_file",
]
