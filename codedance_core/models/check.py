"""A cheap look at a model directory before the seconds it takes to load it.

`check_model_dir` reads config.json and each safetensors file's header (8 bytes of length, then JSON
naming every tensor's byte range), never a tensor: a missing, truncated or random weights file is
reported in milliseconds, with its name, instead of as a traceback after the model load started.
No torch or transformers import, so the CLI and the flows call it before anything heavy.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from codedance_core.errors import UserError

_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
_COPY_HINT = (
    "copy the checkpoint again, or pass a directory written by `codedance model tiny` or `save_pretrained`"
)


class ModelDirError(UserError):
    """A model directory that cannot be loaded; the message names the file at fault."""


class ModelFilesMissing(ModelDirError, FileNotFoundError):
    """The directory, its config.json or its weights are absent."""


def check_model_dir(path: str | Path) -> Path:
    """The directory, once it has a readable config.json, a tokenizer and complete weights; else ModelDirError."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFilesMissing(
            f"{path} is not a model directory (no config.json: it does not exist)",
            f"check the path; {_COPY_HINT}",
        )
    config = path / "config.json"
    if not config.is_file():
        raise ModelFilesMissing(f"{path} is not a model directory (no config.json)", _COPY_HINT)
    try:
        parsed = json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{config} is not valid JSON ({exc})", _COPY_HINT) from None
    if not isinstance(parsed, dict):
        raise ModelDirError(f"{config} is not a JSON object", _COPY_HINT)
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        raise ModelFilesMissing(
            f"{path} has no tokenizer (no tokenizer.json or tokenizer_config.json)", _COPY_HINT
        )
    for weights in weight_files(path):
        if weights.suffix == ".safetensors":
            check_safetensors(weights)
    return path


def weight_files(path: Path) -> list[Path]:
    """The weight files the directory's index (or its single-file name) says it has; each must exist."""
    for index_name, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        index = path / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModelDirError(f"{index} is not a valid weight index ({exc})", _COPY_HINT) from None
            missing = [name for name in shards if not (path / name).is_file()]
            if missing:
                raise ModelFilesMissing(
                    f"{path} lacks weight shards listed in {index_name}: {', '.join(missing)}", _COPY_HINT
                )
            return [path / name for name in shards]
        if (path / single).is_file():
            return [path / single]
    raise ModelFilesMissing(f"{path} has no weights (no model.safetensors or pytorch_model.bin)", _COPY_HINT)


def check_safetensors(file: Path) -> None:
    """The header parses and its tensors' byte ranges cover the file exactly; else ModelDirError."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _corrupt(file, f"{size} bytes, shorter than a header")
        (header_bytes,) = struct.unpack("<Q", prefix)
        if header_bytes > min(_MAX_HEADER_BYTES, size - 8):
            raise _corrupt(file, f"header length {header_bytes} does not fit in {size} bytes")
        try:
            header = json.loads(handle.read(header_bytes))
        except (ValueError, UnicodeDecodeError):
            raise _corrupt(file, "header is not JSON") from None
    if not isinstance(header, dict):
        raise _corrupt(file, "header is not a JSON object")
    try:
        end = max(
            (int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"),
            default=0,
        )
    except (KeyError, TypeError, ValueError, IndexError):
        raise _corrupt(file, "header lacks tensor offsets") from None
    expected = 8 + header_bytes + end
    if expected != size:
        raise _corrupt(file, f"header promises {expected} bytes, the file has {size}")


def _corrupt(file: Path, detail: str) -> ModelDirError:
    return ModelDirError(f"{file} is truncated or corrupt ({detail})", _COPY_HINT)
