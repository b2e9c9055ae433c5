"""The data layer: row schemas, parquet IO at any URI, validation with quarantine, the task suite.

- `schemas`: the RL row as released (both `prompt` and `messages` spellings), SFT and eval rows;
- `images`: encoding and the checks every image passes (bombs rejected from the header);
- `io`: polars/pyarrow readers and atomic writers through the artifact store;
- `validate`: `validate_file` streams a file and quarantines each bad row with one reason;
- `suite`: the procedural visual tasks (`codedance data synth`).
"""

from codedance_core.data.schemas import EvalItem, ImageRef, Message, RLRow, SFTRow
from codedance_core.data.validate import Reason, RowChecker, ValidationReport, validate_file

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
