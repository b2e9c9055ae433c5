"""Benchmark: streaming validation + filtering vs a naive pandas pass over the whole file.

    .venv/bin/python benchmarks/data.py                      # 20,000 rows of ~100 KB images
    .venv/bin/python benchmarks/data.py --rows 2000 --image-kb 50 --out-dir /tmp/bench

It writes an RL-format parquet (noise JPEGs, every row's bytes distinct so nothing is
deduplicated, ~1% of rows deliberately broken), then runs, each in its own subprocess so
their peak memory (ru_maxrss) does not mix:
- ours:  `validate_file` (row-group batches, threaded decoding), writing good rows and quarantine;
- naive: `pandas.read_parquet` of the whole file, the same `RowChecker` row by row, good rows
  written with `DataFrame.to_parquet`.
Both really decode every image. Prints one JSON object; targets: our peak memory at most 1/5
of the naive one, our throughput no worse.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(".codedance/bench")


def noise_jpeg(target_kb: int, seed: int) -> bytes:
    """A noise JPEG of about target_kb kilobytes (side adjusted by the measured bytes per pixel)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    side = 160
    for _ in range(4):
        pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
        data = buffer.getvalue()
        side = max(16, int(side * (target_kb * 1024 / len(data)) ** 0.5))
    return data


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The same JPEG with a COM segment after SOI: distinct bytes, identical pixels, still valid."""
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + jpeg[2:]


def make_rows(start: int, count: int, blobs: list[bytes]) -> list[dict]:
    rows = []
    for index in range(start, start + count):
        image = with_comment(blobs[index % len(blobs)], f"row {index}".encode())
        answer = str(index % 7)
        if index % 97 == 13:
            image = image[: len(image) // 2]  # truncated
        if index % 211 == 5:
            answer = ""  # empty answer
        rows.append({
            "data_source": "bench",
            "prompt": [{"role": "system", "content": "You are a helpful assistant."},
                       {"role": "user", "content": f"<image>\nQuestion {index}?"}],
            "images": [{"bytes": image, "path": f"{index}.jpg"}],
            "ability": "count",
            "reward_model": {"style": "rule", "ground_truth": answer},
            "extra_info": {"split": "train", "index": index, "answer": answer, "question": f"Question {index}?",
                           "need_tools_kwargs": True},
        })
    return rows


def generate(path: Path, rows: int, image_kb: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    blobs = [noise_jpeg(image_kb, seed) for seed in range(8)]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    for start in range(0, rows, 256):
        table = pa.Table.from_pylist(make_rows(start, min(256, rows - start), blobs))
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=256)
    writer.close()
    return {"seconds": round(time.perf_counter() - started, 2), "file_mb": round(path.stat().st_size / 1e6, 1),
            "image_kb": round(sum(map(len, blobs)) / len(blobs) / 1024, 1)}


def run_ours(path: Path, out_dir: Path, batch_rows: int, workers: int) -> dict:
    from codedance_core.config.data import DataConfig
    from codedance_core.data.validate import validate_file

    config = DataConfig(batch_rows=batch_rows, validate_workers=workers)
    report = validate_file(str(path), "rl", good_out=str(out_dir / "ours_good.parquet"),
                           quarantine_out=str(out_dir / "ours_bad.parquet"), config=config)
    return {"rows": report.total_rows, "good": report.good_rows, "bad": report.bad_rows, "reasons": report.reasons}


def to_python(value):
    """pandas hands nested parquet values back as numpy arrays; the checker wants lists and dicts."""
    if isinstance(value, np.ndarray):
        return [to_python(item) for item in value]
    if isinstance(value, dict):
        return {key: to_python(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_naive(path: Path, out_dir: Path) -> dict:
    import pandas as pd

    from codedance_core.data.validate import RowChecker

    frame = pd.read_parquet(path)
    checker = RowChecker("rl")
    problems = [checker.check(to_python(record)) for record in frame.to_dict("records")]
    good = [problem is None for problem in problems]
    frame[good].to_parquet(out_dir / "naive_good.parquet")
    reasons: dict[str, int] = {}
    for problem in problems:
        if problem is not None:
            reasons[problem.reason.value] = reasons.get(problem.reason.value, 0) + 1
    return {"rows": len(frame), "good": sum(good), "bad": len(good) - sum(good), "reasons": reasons}


def measure(mode: str, args: argparse.Namespace) -> dict:
    """Run one path in a fresh interpreter; its wall time and peak resident memory."""
    command = [sys.executable, __file__, "--child", mode, "--out-dir", str(args.out_dir),
               "--batch-rows", str(args.batch_rows), "--workers", str(args.workers)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(mode: str, args: argparse.Namespace) -> None:
    path = args.out_dir / "bench.parquet"
    started = time.perf_counter()
    result = run_ours(path, args.out_dir, args.batch_rows, args.workers) if mode == "ours" else run_naive(
        path, args.out_dir)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({**result, "seconds": round(seconds, 2), "rows_per_s": round(result["rows"] / seconds, 1),
                      "peak_rss_mb": round(peak_mb, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="Rows in the generated parquet.")
    parser.add_argument("--image-kb", type=int, default=100, help="Approximate size of each image.")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="Where the files go (gitignored).")
    parser.add_argument("--batch-rows", type=int, default=256, help="Rows per batch for the streaming validator.")
    parser.add_argument("--workers", type=int, default=2, help="Decoding threads for the streaming validator.")
    parser.add_argument("--reuse", action="store_true", help="Reuse an existing bench.parquet of the same size.")
    parser.add_argument("--child", choices=["ours", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    path = args.out_dir / "bench.parquet"
    generated = {"reused": True}
    if not (args.reuse and path.exists()):
        generated = generate(path, args.rows, args.image_kb)
    ours, naive = measure("ours", args), measure("naive", args)
    assert ours["good"] == naive["good"] and ours["reasons"] == naive["reasons"], (ours, naive)
    memory_ratio = naive["peak_rss_mb"] / ours["peak_rss_mb"]
    speed_ratio = ours["rows_per_s"] / naive["rows_per_s"]
    print(json.dumps({
        "benchmark": "data.validate_filter",
        "rows": ours["rows"],
        "generated": generated,
        "ours": ours,
        "naive_pandas": naive,
        "naive_over_ours_peak_memory": round(memory_ratio, 2),
        "ours_over_naive_throughput": round(speed_ratio, 2),
        "targets_met": {"memory_at_most_one_fifth": memory_ratio >= 5, "throughput_no_worse": speed_ratio >= 1.0},
    }, indent=2))


if __name__ == "__main__":
    main()
