"""`codedance train`: supervised fine-tuning on trajectory rows, and GRPO with the BAT reward.

    codedance train sft --config tiny --data sft.parquet --model .codedance/models/tiny --out runs/sft
    codedance train sft --config paper --dry-run       # the launch plan and each GPU's memory
    codedance train rl --config paper --model /models/Qwen2.5-VL-7B-Instruct --dry-run
    codedance train rl --config tiny --data rl.parquet --model runs/sft/model --out runs/rl \\
        --set grpo.learning_rate=1e-3 --set grpo.prompts_per_step=4

Each command runs the lifecycle's own stage (codedance_core/stages/training.py): the same launch as
in the flows, planned from the profile (a Ray task for one CPU worker, Ray Train for several workers
or GPUs; RAY_ADDRESS picks the cluster, a dashboard address submits a Ray job). The trained model and
its checkpoints go to the artifact store (`--store`, default the profile's); `--out` also gets a copy
of the final model and the per-step metrics. Running the same command again resumes from the last
complete checkpoint of the same stage call (same data, model, settings and code).

The SFT settings are the profile's `sft` section; RL reads `grpo` with the `rollout`, `rewards`,
`sandbox` and `engine` sections. Override any field by dotted path (`--set sft.max_steps=20`).

A dry run needs neither data nor model: it prints the launch plan and, for GPU workers, the memory
plan of one GPU (train/memory_plan.py), from the model's config.json when `--model` (or the profile's
model.path) is a directory here, else from the Qwen2.5-VL size its name says. It exits 1, naming what
to change, when the plan does not fit `gpu_memory_gb`; a real run on GPUs refuses the same way before
it starts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(
    help="Train the policy: multi-turn SFT and GRPO + BAT (resumable; a Ray task on CPU, Ray Train on GPUs).",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

DataOpt = Annotated[str | None, typer.Option("--data", help="Training rows (parquet), local or s3://; not needed by --dry-run.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Model directory to start from (local, or a stored one); --dry-run plans the profile's model.path without it.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Also copy the final model (OUT/model) and metrics here.")]
ConfigOpt = Annotated[str, typer.Option("--config", "-c", help="Profile name (configs/NAME.yaml) or YAML path.")]
OverrideOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override by dotted path, e.g. sft.max_steps=20.")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Artifact store for the model and checkpoints (default: the profile's).")]
TrackingOpt = Annotated[str | None, typer.Option("--tracking-uri", help="Log the run to this MLflow server (default: not logged).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Validate the config, print the launch and memory plans only.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Resume checkpoints written with other settings, continuing with these (else it refuses).")]


@app.command("sft")
def sft(
    data: DataOpt = None, model: ModelOpt = None, out: OutOpt = None, config: ConfigOpt = "tiny", overrides: OverrideOpt = None,
    store: StoreOpt = None, tracking_uri: TrackingOpt = None, dry_run: DryRunOpt = False, as_json: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Fine-tune on multi-turn trajectories, loss on assistant tokens only; resumes from the store's checkpoints."""
    from codedance_core.stages.training import sft_plan, train_sft
    from codedance_core.train.memory_plan import sft_memory

    profile = _load(config, overrides)
    if dry_run:
        memory = sft_memory(profile.sft, _shape(profile, model))
        _print_plan(sft_plan(profile.sft), {"sft": profile.sft.model_dump(mode="json")}, memory, as_json)
        return
    trained = _refused_early(lambda: train_sft(profile.sft, *_inputs(data, model, "sft"),
                                               _context(profile, store, tracking_uri, as_json), force=force))
    _finish("SFT", trained, out, store or profile.store.root, as_json)


@app.command("rl")
def rl(
    data: DataOpt = None, model: ModelOpt = None, out: OutOpt = None, config: ConfigOpt = "tiny", overrides: OverrideOpt = None,
    store: StoreOpt = None, tracking_uri: TrackingOpt = None, dry_run: DryRunOpt = False, as_json: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """GRPO with the BAT reward on multi-turn tool rollouts; resumes from the store's checkpoints."""
    from codedance_core.stages.training import rl_plan, train_rl
    from codedance_core.train.memory_plan import grpo_memory

    profile = _load(config, overrides)
    sections = (profile.grpo, profile.rollout_for("rl"), profile.rewards, profile.sandbox, profile.engine)
    if dry_run:
        shown = {name: section.model_dump(mode="json")
                 for name, section in zip(("grpo", "rollout", "rewards", "sandbox", "engine"), sections, strict=True)}
        memory = grpo_memory(profile.grpo, profile.engine, _shape(profile, model), sections[1].max_context_tokens)
        _print_plan(rl_plan(profile.grpo, profile.engine), shown, memory, as_json)
        return
    trained = _refused_early(lambda: train_rl(*sections, 1, *_inputs(data, model, "rl"), None,
                                              _context(profile, store, tracking_uri, as_json), force=force))
    _finish("GRPO", trained, out, store or profile.store.root, as_json)


def _load(config: str, overrides: list[str] | None) -> Any:
    from codedance_core.cli.exits import exit_with
    from codedance_core.config.loader import ConfigError, load_profile

    try:
        return load_profile(config, overrides or [])
    except ConfigError as exc:
        raise exit_with(exc) from None


def _shape(profile: Any, model: str | None) -> Any:
    """The model's shape for the memory plan: --model's, else the profile's model.path's, else the tiny model's."""
    from codedance_core.train.model_shape import model_shape

    return model_shape(model, profile.model.path, tiny=profile.tiny_model if profile.builds_tiny_model else None)


def _refused_early(run: Any) -> Any:
    """Run a training stage; a memory plan it refuses before starting exits 1 with what to change."""
    from codedance_core.train.memory_plan import MemoryPlanError

    try:
        return run()
    except MemoryPlanError as error:
        err_console.print(str(error), style="red", markup=False, highlight=False)
        raise typer.Exit(1) from None


def _inputs(data: str | None, model: str | None, schema: str) -> tuple[Any, Any]:
    """The two inputs as artifact references (their digests key the stage call), once both look usable:
    the rows have the schema's columns and a local model directory is complete, found here, before
    Ray starts and the model loads."""
    from codedance_core.cli.exits import exit_message, exit_with
    from codedance_core.data.columns import require_columns
    from codedance_core.models.check import check_model_dir
    from codedance_core.storage import artifact_ref, is_remote

    if data is None or model is None:
        raise exit_message("--data and --model are needed to train (only --dry-run goes without)")
    try:
        require_columns(data, schema)  # type: ignore[arg-type]
        if not is_remote(model):
            check_model_dir(model)
        return artifact_ref(data), artifact_ref(model)
    except (FileNotFoundError, ValueError) as exc:
        raise exit_with(exc) from None


def _context(profile: Any, store: str | None, tracking_uri: str | None, quiet: bool) -> Any:
    from codedance_core.stages import StageContext, Tracking

    tracking = Tracking.of(tracking_uri, profile.tracking.experiment, profile.tracking.artifact_root) if tracking_uri else None
    log = err_console.print if quiet else console.print
    return StageContext(store or profile.store.root, tracking, log=lambda line: log(line, markup=False, highlight=False))


def _print_plan(plan: Any, sections: dict[str, Any], memory: Any, as_json: bool) -> None:
    """The launch plan, the sections it runs with and one GPU's memory; exit 1 when that does not fit."""
    from codedance_core.stages.ray_address import ray_address_from_env

    shown = {"plan": plan.describe(ray_address_from_env()), **sections, "memory": memory.describe()}
    if as_json:
        print(json.dumps(shown, default=str))
    else:
        console.print_json(json.dumps({k: v for k, v in shown.items() if k != "memory"}, default=str))
        _print_memory(memory)
    refusal = memory.refusal()
    if refusal is not None:
        err_console.print(refusal, style="red", markup=False, highlight=False)
        raise typer.Exit(1)


def _print_memory(memory: Any) -> None:
    """One GPU's memory as a table: a column per phase, the total against the GPU."""
    from rich.table import Table

    if memory.not_planned is not None:
        console.print(f"memory per GPU: {memory.summary()}")
        return
    table = Table(title=f"Memory of one GPU ({memory.section}): {memory.summary()}", title_justify="left")
    table.add_column("")
    for phase in memory.phases:
        table.add_column(f"{phase} GiB", justify="right")
    table.add_column("how")
    for line in memory.lines:
        table.add_row(line.item, *(f"{gib:.1f}" for gib in line.gib), line.how, style=None if any(line.gib) else "dim")
    table.add_section()
    table.add_row("total", *(f"{total:.1f}" for total in memory.totals), "", style="bold")
    table.add_row("GPU (gpu_memory_gb)", *(f"{memory.gpu_gib:g}" for _ in memory.phases), "")
    console.print(table)
    console.print(f"model: {memory.model}", markup=False, highlight=False)
    for note in memory.notes:
        console.print(f"  {note}", markup=False, highlight=False)


def _finish(what: str, trained: Any, out: Path | None, store_root: str, as_json: bool) -> None:
    """Copy the model and metrics to --out when asked, then print the summary."""
    from codedance_core.storage import ArtifactStore

    store = ArtifactStore(store_root)
    model_dir = store.local_directory(trained.model)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(model_dir, out / "model", dirs_exist_ok=True)
        if trained.metrics is not None:
            (out / "metrics.jsonl").write_bytes(store.read_bytes(trained.metrics.uri))
        model_dir = out / "model"
    summary = {"steps": trained.steps, "model": trained.model.uri, "model_dir": str(model_dir),
               "metrics": trained.metrics.uri if trained.metrics else None, "resumed_from": trained.resumed_from,
               "quarantined_rows": trained.quarantined_rows,
               "quarantine": trained.quarantine.uri if trained.quarantine else None}
    if as_json:
        print(json.dumps(summary))
        return
    console.print(f"[green]{what} done[/green]: {trained.steps} steps; model {trained.model.uri} ({trained.model.short_digest})"
                  + (f", copied to {model_dir}" if out is not None else "")
                  + (f" (resumed from {trained.resumed_from})" if trained.resumed_from else ""))
    if trained.quarantined_rows:
        console.print(f"[yellow]{trained.quarantined_rows} bad rows quarantined[/yellow] (each with its reason): "
                      f"{trained.quarantine.uri if trained.quarantine else 'not stored'}", highlight=False)
