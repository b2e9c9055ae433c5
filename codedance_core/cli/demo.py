"""`make demo`: the lifecycle on the tiny profile, on this machine, with nothing to install.

Today it runs the stages that exist end to end, in order, and says where their outputs are:
1. synthesise the procedural task suite (train and held-out test splits) into the store;
2. validate both splits (bad rows would go to a quarantine file with a reason);
3. build the tiny Qwen2.5-VL-architecture model (tokenizer trained on the suite's text);
4. roll out a few test items with the multi-turn tool loop and the real sandbox.
Later stages (filtering, synthesis of trajectories, SFT, RL, evaluation) join as they land,
and the whole thing moves under the Prefect lifecycle flow.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from codedance_core.config import ProfileConfig
from codedance_core.storage import ArtifactStore


def run_demo(profile: ProfileConfig, workdir: Path, console: Console) -> None:
    console.rule(f"CodeDance demo: profile {profile.name!r}")
    store = ArtifactStore(profile.store.root)
    timings: list[tuple[str, float, str]] = []

    started = time.perf_counter()
    refs = _synthesise_suite(profile, store)
    timings.append(("synthesise suite", time.perf_counter() - started, f"{refs['train'].rows} + {refs['test'].rows} rows"))

    started = time.perf_counter()
    reports = _validate(profile, store, refs)
    bad = sum(r.bad_rows for r in reports.values())
    timings.append(("validate", time.perf_counter() - started, f"{bad} rows quarantined"))

    started = time.perf_counter()
    model_dir = _tiny_model(profile, workdir)
    timings.append(("build tiny model", time.perf_counter() - started, str(model_dir)))

    started = time.perf_counter()
    finishes = _rollout(profile, model_dir, refs["test"].uri)
    timings.append(("rollout (untrained)", time.perf_counter() - started, _counts(finishes)))

    _print_summary(console, refs, reports, timings)


def _synthesise_suite(profile: ProfileConfig, store: ArtifactStore) -> dict:
    from codedance_core.data.suite.generator import write_suite

    refs = {}
    for split in ("train", "test"):
        spec = profile.data.suite_spec(split)
        relpath = f"data/suite/{profile.data.seed}/{split}.parquet"
        existing = store.ref(relpath)
        if existing is not None and existing.rows == spec.n:
            refs[split] = existing  # deterministic by seed: the same spec gives the same rows
            continue
        refs[split] = write_suite(spec, store.uri(relpath), workers=profile.data.synth_workers)
    return refs


def _validate(profile: ProfileConfig, store: ArtifactStore, refs: dict) -> dict:
    from codedance_core.data.validate import validate_file

    return {
        split: validate_file(
            ref.uri, "rl", quarantine_out=store.uri(f"quarantine/suite-{split}.parquet"), config=profile.data
        )
        for split, ref in refs.items()
    }


def _tiny_model(profile: ProfileConfig, workdir: Path) -> Path:
    from codedance_core.models import build_tiny_model
    from codedance_core.models.tiny import suite_corpus

    model_dir = Path(profile.model.path)
    if (model_dir / "config.json").exists():
        return model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    return build_tiny_model(model_dir, suite_corpus(rows=400, seed=profile.seed, workers=2), profile.tiny_model)


def _rollout(profile: ProfileConfig, model_dir: Path, test_uri: str, limit: int = 8) -> list[str]:
    from codedance_core.agent.items import item_from_rl_row
    from codedance_core.agent.rollout import Rollout
    from codedance_core.config.agent import RolloutConfig
    from codedance_core.data.io import read_rows
    from codedance_core.engines.hf import HFEngine
    from codedance_core.models import load_model_bundle
    from codedance_core.sandbox import SandboxConfig, SandboxPool

    bundle = load_model_bundle(model_dir, device="cpu", dtype="float32")
    low, high = profile.tiny_model.min_pixels, profile.tiny_model.max_pixels
    rows = read_rows(test_uri).head(limit).to_dicts()
    items = [item_from_rl_row(row, i, low, high) for i, row in enumerate(rows)]

    async def go():
        async with SandboxPool(SandboxConfig(workers=2)) as pool:
            loop = Rollout(HFEngine(bundle), pool, RolloutConfig(max_new_tokens=64, seed=profile.seed), bundle=bundle)
            return await loop.run(items)

    return [t.finish_reason for t in asyncio.run(go())]


def _counts(values: list[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in Counter(values).most_common())


def _print_summary(console: Console, refs: dict, reports: dict, timings: list) -> None:
    table = Table(title="What the demo did")
    for column in ("step", "seconds", "result"):
        table.add_column(column)
    for step, seconds, result in timings:
        table.add_row(step, f"{seconds:.1f}", result)
    console.print(table)
    for split, ref in refs.items():
        report = reports[split]
        console.print(
            f"[bold]{split}[/bold]: {ref.uri} ({ref.rows} rows, {ref.short_digest}); "
            f"valid {report.good_rows}, quarantined {report.bad_rows}"
        )
    console.print("Inspect a split:  codedance data validate " + refs["test"].uri)
