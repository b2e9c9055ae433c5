"""Reading and writing row files (parquet) at any URI: local path, s3://, hf://datasets/...

Two ways in, chosen by size:
- `read_rows` / `scan_rows` give a polars DataFrame / LazyFrame: for small files and for
  column-wise work that polars can stream on its own;
- `iter_batches` yields record batches of at most `batch_rows` rows, read row group by row
  group through an fsspec file, so a 20 GB parquet of images is checked in a few hundred MB.
  The validator uses this path; it is also the only one that works for any fsspec scheme.

Writes go through the artifact store (`ArtifactStore.for_file`): a file appears complete, with
its manifest and digest, or not at all. `ParquetSink` streams batches into a staged file and
commits it on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Self

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from codedance_core.storage import ArtifactRef, ArtifactStore, filesystem, resolve_uri, storage_options

_READ_BUFFER_BYTES = 1 << 20


class NotParquetError(ValueError):
    """The file is missing or is not a parquet file; the message is one line for the user."""


@dataclass
class ParquetSource:
    """An open parquet file at a URI; close it (or use it as a context manager) when done."""

    uri: str
    file: pq.ParquetFile
    handle: IO[bytes]

    @property
    def num_rows(self) -> int:
        return self.file.metadata.num_rows

    @property
    def schema(self) -> pa.Schema:
        return self.file.schema_arrow

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_parquet(uri: str) -> ParquetSource:
    """Open a parquet file for streaming reads; NotParquetError when it is absent or not parquet."""
    fs, path = filesystem(resolve_uri(uri))
    try:
        handle = fs.open(path, "rb")
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise NotParquetError(f"{uri}: no such file ({type(exc).__name__})") from None
    try:
        # No pre-buffering (it reads ahead whole row groups and grows with the file) and a buffered
        # stream, so memory is bounded by one batch rather than by row group or file size.
        parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=_READ_BUFFER_BYTES)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        handle.close()
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotParquetError(f"{uri}: not a parquet file ({first_line})") from None
    return ParquetSource(uri=uri, file=parquet, handle=handle)


def iter_batches(
    uri: str, batch_rows: int = 256, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Record batches of at most `batch_rows` rows, streamed (never the whole file in memory)."""
    with open_parquet(uri) as source:
        yield from source.file.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False)


def read_rows(uri: str, columns: list[str] | None = None) -> pl.DataFrame:
    """A whole (small) parquet file as a polars DataFrame."""
    fs, path = filesystem(resolve_uri(uri))
    with fs.open(path, "rb") as handle:
        return pl.read_parquet(handle, columns=columns)


def scan_rows(uri: str) -> pl.LazyFrame:
    """A lazy polars scan; polars reads local and s3:// natively (hf:// via its own support)."""
    resolved = resolve_uri(uri)  # a stored artifact's current version
    target = filesystem(resolved)[1] if "://" not in resolved else resolved
    return pl.scan_parquet(target, storage_options=storage_options(uri))


def write_rows(frame: pl.DataFrame | pa.Table, uri: str, row_group_rows: int = 256) -> ArtifactRef:
    """Write a table to `uri` atomically through the store; its reference (digest, rows)."""
    table = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
    with ParquetSink.open(uri, table.schema, row_group_rows=row_group_rows) as sink:
        sink.write(table)
    assert sink.ref is not None
    return sink.ref


@dataclass
class ParquetSink:
    """A streaming parquet writer into a staged file; `ref` is set once committed."""

    writer: pq.ParquetWriter
    row_group_rows: int
    rows: int = 0
    ref: ArtifactRef | None = field(default=None)

    @classmethod
    @contextmanager
    def open(cls, uri: str, schema: pa.Schema, row_group_rows: int = 256) -> Iterator[ParquetSink]:
        store, name = ArtifactStore.for_file(uri)
        with store.stage(name) as staged:
            writer = pq.ParquetWriter(staged.path, schema, compression="zstd")
            sink = cls(writer=writer, row_group_rows=row_group_rows)
            try:
                yield sink
            finally:
                writer.close()
        sink.ref = staged.ref

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        if table.num_rows:
            self.writer.write_table(table, row_group_size=self.row_group_rows)
            self.rows += table.num_rows

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        self.write(pa.Table.from_pylist(rows, schema=self.writer.schema))
