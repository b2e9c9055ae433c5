"""The quarantine every stage shares: bad rows set aside unchanged, each with one reason.

The layout is the validator's (`validate.validate_file`): the input's columns as they were, plus
`reason` (a short code) and `reason_detail` (a human explanation), in a parquet file written
through the artifact store. Training writes one beside its run's outputs (`QUARANTINE_FILE`),
counts it in its result and in MLflow (`quarantined_rows`), and logs the file as an artifact.

A file of which no row is usable is not a result of zero: it is `NoValidRowsError`, naming the
file, the columns it has and the columns the stage expected (usually the wrong file or layout).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from codedance_core.errors import UserError
from codedance_core.storage import ArtifactRef

QUARANTINE_COLUMNS = ("reason", "reason_detail")
QUARANTINE_FILE = "quarantine.parquet"


class NoValidRowsError(UserError):
    """No row of a file could be used; the message names the file and both sets of columns."""

    def __init__(
        self,
        uri: str,
        found: Sequence[str],
        expected: Sequence[str],
        reasons: Mapping[str, int] | None = None,
        example: str = "",
        rows: int = 0,
    ) -> None:
        self.uri, self.found, self.expected = uri, list(found), list(expected)
        self.reasons = dict(reasons or {})
        counts = ", ".join(f"{reason} x{count}" for reason, count in sorted(self.reasons.items()))
        message = (
            f"{uri}: no valid row{f' in {rows} rows' if rows else ''}; "
            f"columns found: {', '.join(self.found) or '(none)'}; "
            f"columns expected: {', '.join(self.expected)}"
        )
        if counts:
            message += f"; reasons: {counts}"
        if example:
            message += f" (first: {example[:200]})"
        super().__init__(message, "check that the file is the one meant for this stage, in the layout it reads")


def with_reasons(table: pa.Table, reasons: Sequence[str], details: Sequence[str]) -> pa.Table:
    """`table` with the reason columns appended (replacing any from an earlier pass)."""
    table = table.drop_columns([name for name in QUARANTINE_COLUMNS if name in table.column_names])
    return table.append_column("reason", pa.array(list(reasons), pa.string())).append_column(
        "reason_detail", pa.array(list(details), pa.string())
    )


@dataclass
class Quarantine:
    """Bad rows collected in memory with their reasons; `write` puts them in the shared layout.

    `schema` is the source file's, when the rows came from one: the rows are written back with
    their own column types. Rows given as dicts without one are written with each column's inferred
    type, or as JSON text for a column whose values do not agree on one."""

    schema: pa.Schema | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, row: Mapping[str, Any], reason: str, detail: str) -> None:
        self.rows.append(dict(row))
        self.reasons.append(reason)
        self.details.append(detail)

    def __len__(self) -> int:
        return len(self.rows)

    def counts(self) -> dict[str, int]:
        """Quarantined rows per reason."""
        return dict(Counter(self.reasons))

    def examples(self) -> dict[str, str]:
        """The first detail seen for each reason."""
        first: dict[str, str] = {}
        for reason, detail in zip(self.reasons, self.details, strict=True):
            first.setdefault(reason, detail)
        return first

    def table(self) -> pa.Table:
        return with_reasons(_rows_table(self.rows, self.schema), self.reasons, self.details)

    def write(self, uri: str) -> ArtifactRef | None:
        """Write the quarantine to `uri` (through the store); None, and no file, when it is empty."""
        if not self.rows:
            return None
        from codedance_core.data.io import write_rows

        return write_rows(self.table(), uri)

    def summary(self) -> dict[str, Any]:
        return {"quarantined_rows": len(self), "quarantine_reasons": self.counts()}


def _rows_table(rows: list[dict[str, Any]], schema: pa.Schema | None) -> pa.Table:
    if schema is not None:
        kept = pa.schema([f for f in schema if f.name not in QUARANTINE_COLUMNS])
        try:
            return pa.Table.from_pylist(rows, schema=kept)
        except (pa.ArrowException, TypeError, ValueError):
            pass  # a row that does not fit its own file's schema: fall through to inference
    names = list(dict.fromkeys(name for row in rows for name in row))  # every row's keys, not the first's
    return pa.table({name: _column([row.get(name) for row in rows]) for name in names})


def _column(values: list[Any]) -> pa.Array:
    """A column of values with their inferred type, or as JSON text when they disagree on one."""
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array([_as_text(value) for value in values], pa.string())


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return json.dumps(value, default=lambda v: f"<{type(v).__name__}>")


def columns_of(rows: Iterable[Mapping[str, Any]], schema: pa.Schema | None = None) -> list[str]:
    """The columns a file has: its schema's names, else every key seen in its rows."""
    if schema is not None:
        return list(schema.names)
    return list(dict.fromkeys(name for row in rows for name in row))


__all__ = [
    "QUARANTINE_COLUMNS",
    "QUARANTINE_FILE",
    "NoValidRowsError",
    "Quarantine",
    "columns_of",
    "with_reasons",
]
