"""`codedance train`: supervised fine-tuning on trajectory rows, and GRPO with the BAT reward.

    codedance train sft --config tiny --data sft.parquet --model .codedance/models/tiny --out runs/sft
    codedance train sft --config paper --data s3://bucket/sft.parquet --model /models/qwen7b --out runs/sft --ray
    codedance train sft --config paper ... --dry-run      # validate and plan resources, train nothing
    codedance train rl --config tiny --data rl.parquet --model runs/sft/model --out runs/rl \
        --set grpo.learning_rate=1e-3 --set grpo.prompts_per_step=4
    codedance train rl --config paper --data s3://bucket/rl.parquet --model /models/sft7b --out runs/rl --dry-run

The RL settings are the profile's `grpo` section (`GRPOConfig`, defaults = the original's 7B run),
with the profile's `rollout`, `rewards`, `sandbox` and `engine` sections for the tool loop.

The SFT settings are the profile's `sft` section (`SFTConfig`), overridden by dotted paths
(`--set sft.max_steps=20`). Running the same command again with the same `--out` resumes from
the last complete checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(
    help="Train the policy: multi-turn SFT and GRPO + BAT (resumable; CPU, or Ray on GPUs).", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)


@app.command("sft")
def sft(
    data: Annotated[str, typer.Option("--data", help="SFT parquet (messages + images), local or s3://.")],
    model: Annotated[
        Path, typer.Option("--model", help="Model directory to start from (tiny or Qwen2.5-VL).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Run directory: metrics.jsonl, checkpoints, final model.")
    ],
    config: Annotated[
        str, typer.Option("--config", "-c", help="Profile name (configs/NAME.yaml) or YAML path.")
    ] = "tiny",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override by dotted path, e.g. sft.max_steps=20.")
    ] = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            "--checkpoints", help="Where checkpoints go (folder or s3://); default OUT/checkpoints."
        ),
    ] = None,
    use_ray: Annotated[
        bool, typer.Option("--ray", help="Run under Ray Train (RAY_ADDRESS or a local Ray).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate the config and print the plan only.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Fine-tune on multi-turn trajectories, loss on assistant tokens only; resumes from OUT's checkpoints."""
    from codedance_core.config.loader import ConfigError, load_profile
    from codedance_core.train.distributed import plan_resources

    try:
        sft_config = load_profile(config, overrides or []).sft
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if dry_run:
        plan = {"config": sft_config.model_dump(mode="json"), "resources": plan_resources(sft_config)}
        print(json.dumps(plan)) if as_json else console.print_json(json.dumps(plan))
        return
    summary = _run(sft_config, data, model, out, checkpoints, use_ray)
    if as_json:
        print(json.dumps(summary, default=str))
        return
    console.print(
        f"[green]SFT done[/green]: {summary['steps']} steps, final loss {summary['final_loss']:.4f}, "
        f"{summary['tokens_per_s']:.0f} tokens/s; model in {summary['model_dir']}"
        + (f" (resumed from {summary['resumed_from']})" if summary.get("resumed_from") else "")
    )


def _run(sft_config: Any, data: str, model: Path, out: Path, checkpoints: str | None, use_ray: bool) -> dict:
    if use_ray:
        from codedance_core.train.ray_train import train_sft_on_ray

        return train_sft_on_ray(sft_config, data, model, out, checkpoints)
    from codedance_core.train.sft import train_sft

    result = train_sft(sft_config, data, model, out, checkpoint_uri=checkpoints)
    return {
        "steps": result.steps,
        "final_loss": result.final_loss,
        "tokens_per_s": result.tokens_per_s,
        "model_dir": str(result.model_dir),
        "resumed_from": result.resumed_from,
        "data": result.data,
    }


@app.command("rl")
def rl(
    data: Annotated[str, typer.Option("--data", help="RL parquet (the released layout or the suite's), local or s3://.")],
    model: Annotated[Path, typer.Option("--model", help="Model directory to start from (the SFT model).")],
    out: Annotated[Path, typer.Option("--out", help="Run directory: metrics.jsonl, trajectories/, checkpoints, model.")],
    config: Annotated[
        str, typer.Option("--config", "-c", help="Profile name (configs/NAME.yaml) or YAML path.")
    ] = "tiny",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override by dotted path, e.g. grpo.max_steps=20.")
    ] = None,
    checkpoints: Annotated[
        str | None, typer.Option("--checkpoints", help="Where checkpoints go (folder or s3://); default OUT/checkpoints.")
    ] = None,
    use_ray: Annotated[bool, typer.Option("--ray", help="Run under Ray Train (RAY_ADDRESS or a local Ray).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate the config and print the plan only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """GRPO with the BAT reward on multi-turn tool rollouts; resumes from OUT's checkpoints."""
    from codedance_core.config.loader import ConfigError, load_profile
    from codedance_core.train.grpo_ray import plan_grpo_resources

    try:
        profile = load_profile(config, overrides or [])
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    grpo_config = profile.grpo
    sections = {name: getattr(profile, name) for name in ("rollout", "rewards", "sandbox", "engine")}
    if dry_run:
        plan = {
            "config": grpo_config.model_dump(mode="json"),
            "resources": plan_grpo_resources(grpo_config, profile.engine),
            **{name: section.model_dump(mode="json") for name, section in sections.items()},
        }
        print(json.dumps(plan)) if as_json else console.print_json(json.dumps(plan))
        return
    summary = _run_rl(grpo_config, sections, data, model, out, checkpoints, use_ray)
    if as_json:
        print(json.dumps(summary, default=str))
        return
    last = summary.get("last") or {}
    console.print(
        f"[green]GRPO done[/green]: {summary['steps']} steps, reward {last.get('reward_mean', float('nan')):.3f}, "
        f"accuracy {last.get('accuracy', float('nan')):.3f}; model in {summary['model_dir']}"
        + (f" (resumed from {summary['resumed_from']})" if summary.get("resumed_from") else "")
    )


def _run_rl(
    grpo_config: Any, sections: dict[str, Any], data: str, model: Path, out: Path, checkpoints: str | None, use_ray: bool
) -> dict:
    if use_ray:
        from codedance_core.train.grpo_ray import train_grpo_on_ray

        return train_grpo_on_ray(grpo_config, data, model, out, checkpoints, **sections)
    from codedance_core.train.grpo import train_grpo
    from codedance_core.train.grpo_ray import judge_for

    result = train_grpo(
        grpo_config, data, model, out, checkpoint_uri=checkpoints, judge=judge_for(sections["rewards"]), **sections
    )
    return {
        "steps": result.steps,
        "model_dir": str(result.model_dir),
        "resumed_from": result.resumed_from,
        "last": result.history[-1] if result.history else {},
    }
