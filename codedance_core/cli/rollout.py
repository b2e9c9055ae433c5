"""`codedance rollout`: run the multi-turn tool loop over an RL parquet and write trajectories."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def rollout(
    model: Annotated[Path, typer.Option(help="Model directory (tiny or a real checkpoint).")],
    data: Annotated[str, typer.Option(help="RL-format parquet (local path or s3://).")],
    out: Annotated[str, typer.Option(help="Where to write the trajectories (parquet).")],
    n: Annotated[int, typer.Option("--n", help="Samples per prompt.")] = 1,
    limit: Annotated[int | None, typer.Option(help="Only the first N rows.")] = None,
    max_turns: Annotated[int, typer.Option(help="Assistant turns at most.")] = 6,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per assistant turn.")] = 512,
    temperature: Annotated[float, typer.Option(help="0 for greedy.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    workers: Annotated[int, typer.Option(help="Sandbox template processes.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Roll out trajectories (code runs in the sandbox) and print what they did."""
    from codedance_core.data.columns import require_columns
    from codedance_core.errors import UserError
    from codedance_core.models.check import check_model_dir

    # Everything that can be wrong with the arguments is found before the model load (seconds).
    for flag, value in (("--n", n), ("--limit", limit), ("--max-turns", max_turns), ("--max-new-tokens", max_new_tokens),
                        ("--workers", workers)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, not {value}")
    check_model_dir(model)
    require_columns(data, "rl")

    import polars as pl

    from codedance_core.agent.items import item_from_rl_row
    from codedance_core.agent.rollout import Rollout
    from codedance_core.config.agent import RolloutConfig
    from codedance_core.data.io import read_rows, write_rows
    from codedance_core.engines.hf import HFEngine
    from codedance_core.models import load_model_bundle
    from codedance_core.models.images import pixel_bounds
    from codedance_core.sandbox import SandboxConfig, SandboxPool

    bundle = load_model_bundle(model, device=device)
    low, high = pixel_bounds(bundle.image_processor)
    frame = read_rows(data)
    rows = (frame.head(limit) if limit else frame).to_dicts()
    items, skipped = [], Counter()
    for index, row in enumerate(rows):
        try:
            items.append(item_from_rl_row(row, index, low, high))
        except ValueError as exc:  # a bad row is reported, the others run
            skipped[type(exc).__name__] += 1
    config = RolloutConfig(
        max_turns=max_turns, max_new_tokens=max_new_tokens, temperature=temperature, samples_per_prompt=n, seed=seed
    )

    async def go():
        async with SandboxPool(SandboxConfig(workers=workers)) as pool:
            loop = Rollout(HFEngine(bundle), pool, config, bundle=bundle)
            return await loop.run(items), loop.stats

    trajectories, stats = asyncio.run(go())
    ref = write_rows(pl.DataFrame([t.to_row() for t in trajectories]), out)
    summary = summarise(trajectories)
    summary.update(
        out=ref.uri, rows_skipped=dict(skipped), wall_s=round(stats.wall_s, 2),
        sandbox_hidden_fraction=round(stats.sandbox_hidden_fraction, 3),
    )
    if as_json:
        print(json.dumps(summary))
        return
    _print(summary)


def summarise(trajectories) -> dict:
    statuses = Counter(s for t in trajectories for s in t.tool_statuses if s is not None)
    count = max(1, len(trajectories))
    return {
        "trajectories": len(trajectories),
        "answers_found": sum(t.answer is not None for t in trajectories),
        "tool_calls_per_trajectory": round(sum(t.tool_calls for t in trajectories) / count, 3),
        "turns_per_trajectory": round(sum(len(t.turns) for t in trajectories) / count, 3),
        "execution_statuses": dict(statuses),
        "finish_reasons": dict(Counter(t.finish_reason for t in trajectories)),
    }


def _print(summary: dict) -> None:
    table = Table(title="rollout")
    table.add_column("what")
    table.add_column("value")
    for key, value in summary.items():
        table.add_row(key, ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else str(value))
    console.print(table)
