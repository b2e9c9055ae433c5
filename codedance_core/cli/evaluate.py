"""`codedance eval`: evaluate a served model (or a local checkpoint) on a benchmark.

The options keep the original evaluation script's spellings, so its command lines still work:

    codedance eval --model_name codedance-7b --api_url http://h1:8000/v1,http://h2:8000/v1 \\
        --data_path hr_bench_4k.tsv --benchmark hrbench_4k --save_path results --num_workers 64

and add `--model DIR` (no server), `--samples K` (avg@k), `--max_turns`, `--limit`. Outputs land
in --save_path: result_*.jsonl (resumable), stats_*.json, viewer_*.html and plot_*.png.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from codedance_core.evaluation.entry import run_evaluation

PROMPT_OPTION_HELP = (
    "original (default): the original evaluation script's prompt (system prompt, image, the row's question, "
    "instruction); row: the row's own prompt where it has one (RL-layout rows)."
)
console = Console()
err_console = Console(stderr=True)
app = typer.Typer(help="Evaluate a model on a benchmark with the tool loop (codedance eval).")


def _benchmark_help() -> str:
    from codedance_core.evaluation.registry import BENCHMARKS

    return "Benchmark entry: " + "; ".join(f"{b.name}: {b.expects}" for b in BENCHMARKS.values())


def eval_command(
    data_path: Annotated[
        str, typer.Option("--data_path", "--data-path", help="The benchmark's file (or V* folder).")
    ],
    benchmark: Annotated[str, typer.Option("--benchmark", help=_benchmark_help())] = "parquet",
    model_name: Annotated[
        str,
        typer.Option("--model_name", "--model-name", help="Model name (served name; used in file names)."),
    ] = "",
    api_url: Annotated[
        str, typer.Option("--api_url", "--api-url", help="OpenAI-compatible base URL(s), comma-separated.")
    ] = "",
    model: Annotated[
        Path | None, typer.Option("--model", help="Local checkpoint directory (no server).")
    ] = None,
    save_path: Annotated[
        str, typer.Option("--save_path", "--save-path", help="Output folder.")
    ] = "eval_results",
    num_workers: Annotated[
        int, typer.Option("--num_workers", "--num-workers", help="Items in flight at once.")
    ] = 32,
    data_source: Annotated[
        str, typer.Option("--data_source", "--data-source", help="Override every item's data_source.")
    ] = "",
    samples: Annotated[int, typer.Option("--samples", help="Samples per item (avg@k).")] = 1,
    prompt: Annotated[str, typer.Option("--prompt", help=PROMPT_OPTION_HELP)] = "original",
    max_turns: Annotated[
        int, typer.Option("--max_turns", "--max-turns", help="Model calls per item at most.")
    ] = 7,
    max_new_tokens: Annotated[
        int, typer.Option("--max_new_tokens", "--max-new-tokens", help="Tokens per turn.")
    ] = 2048,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy.")] = 0.0,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N items.")] = None,
    judge_url: Annotated[
        str,
        typer.Option(
            "--judge_url",
            "--judge-url",
            help="Judge base URL(s), comma-separated (default: $LLM_AS_A_JUDGE_BASE).",
        ),
    ] = "",
    judge_timeout: Annotated[
        float | None,
        typer.Option("--judge_timeout", "--judge-timeout", help="Seconds one judge request may take."),
    ] = None,
    judge_retries: Annotated[
        int | None,
        typer.Option("--judge_retries", "--judge-retries", help="Judge retries after the first attempt."),
    ] = None,
    judge_budget: Annotated[
        float | None,
        typer.Option(
            "--judge_budget",
            "--judge-budget",
            help="Seconds to spend waiting on a failing judge in all; then answers are judge_error.",
        ),
    ] = None,
    sandbox_workers: Annotated[
        int, typer.Option("--sandbox_workers", "--sandbox-workers", help="Sandbox template processes.")
    ] = 2,
    device: Annotated[str, typer.Option("--device", help="Device for --model: auto, cpu, cuda.")] = "auto",
    no_viewer: Annotated[
        bool, typer.Option("--no_viewer", "--no-viewer", help="Skip the HTML viewer and plot.")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stats as JSON.")] = False,
) -> None:
    """Roll out every item with the tool loop, score it, and write results, stats, viewer and plot."""
    from pydantic import ValidationError

    from codedance_core.cli.exits import exit_with
    from codedance_core.config.agent import RolloutSettings
    from codedance_core.config.evaluation import EvalConfig
    from codedance_core.config.rewards import JudgeConfig, RewardConfig, judge_limits
    from codedance_core.config.sandbox import SandboxConfig

    try:
        config = EvalConfig(
            benchmark=benchmark,
            data_path=data_path,
            data_source=data_source,
            prompt=prompt,
            model_name=model_name,
            api_urls=[url.strip() for url in api_url.split(",") if url.strip()],
            model_dir=str(model) if model else "",
            device=device,
            save_path=save_path,
            num_workers=num_workers,
            samples=samples,
            rollout=RolloutSettings(max_turns=max_turns, max_new_tokens=max_new_tokens, temperature=temperature),
            limit=limit,
            write_viewer=not no_viewer,
            sandbox=SandboxConfig(workers=sandbox_workers),
            rewards=RewardConfig(
                judge=judge_limits(
                    JudgeConfig(base_urls=[u.strip() for u in judge_url.split(",") if u.strip()]),
                    timeout_s=judge_timeout,
                    max_retries=judge_retries,
                    budget_s=judge_budget,
                )
            ),
        )
    except ValidationError as error:
        raise exit_with(error) from None
    try:
        check_eval_inputs(config)  # before the model load: seconds for a local checkpoint
        outputs = run_evaluation(config, show_progress=progress and not as_json)
    except ValueError as error:  # a wrong benchmark name or file layout: say what is expected
        raise exit_with(error) from None
    if as_json:
        print(json.dumps({**outputs.stats, "outputs": {k: str(v) for k, v in outputs.paths.items()}}))
        return
    _print(outputs)


app.command("eval")(eval_command)


def check_eval_inputs(config) -> None:
    """What can be checked without a model: the benchmark's name, its data file, the checkpoint's files."""
    from codedance_core.cli.exits import check_reachable
    from codedance_core.errors import UserError
    from codedance_core.evaluation.registry import data_file, get_benchmark
    from codedance_core.models.check import check_model_dir
    from codedance_core.storage import is_remote

    benchmark = get_benchmark(config.benchmark)
    if not is_remote(config.data_path):
        path = Path(config.data_path)
        if not path.exists():
            raise UserError(f"benchmark data {path} does not exist", f"check --data_path ({benchmark.expects})")
        data_file(benchmark, path)
    if config.model_dir:
        check_model_dir(config.model_dir)
    for url in config.api_urls:
        check_reachable(url, "model server")


def _print(outputs) -> None:
    from codedance_core.evaluation.runner import accuracy_headline

    stats = outputs.stats
    console.print(accuracy_headline(stats))
    low, high = stats["accuracy_ci95"]
    table = Table(title=f"{stats['model']} on {stats['dataset']}")
    table.add_column("what")
    table.add_column("value")
    table.add_row("items / trajectories", f"{stats['items']} / {stats['trajectories']}")
    table.add_row(
        f"accuracy (avg@{stats['samples_per_item']})",
        f"{100 * stats['accuracy']:.1f}%  [{100 * low:.1f}, {100 * high:.1f}] ({stats['ci_method']})",
    )
    for key in ("judge_score", "turns", "tool_call_rate", "code_success_rate", "failures"):
        value = stats[key]
        table.add_row(
            key, "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
        )
    table.add_row("ran / resumed", f"{outputs.ran} / {outputs.skipped}")
    for key, path in outputs.paths.items():
        table.add_row(key, str(path))
    console.print(table)


def eval_suite_command(
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile name (configs/NAME.yaml) or a YAML path.")] = "tiny",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Profile override by dotted path (repeatable).")
    ] = None,
    bench: Annotated[
        list[str] | None,
        typer.Option("--bench", help="NAME=PATH[:LIMIT], repeatable; replaces the profile's evaluation.benchmarks."),
    ] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Local checkpoint directory (no server).")] = None,
    api_url: Annotated[
        str, typer.Option("--api_url", "--api-url", help="OpenAI-compatible base URL(s), comma-separated.")
    ] = "",
    model_name: Annotated[
        str, typer.Option("--model_name", "--model-name", help="Model name (served name; used in file names).")
    ] = "",
    save_path: Annotated[str, typer.Option("--save_path", "--save-path", help="Output folder.")] = "eval_results",
    prompt: Annotated[
        str | None, typer.Option("--prompt", help=PROMPT_OPTION_HELP + " Default: the profile's evaluation.prompt.")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="Device for --model: auto, cpu, cuda.")] = "auto",
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log a parent run and a child run per benchmark.")
    ] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Evaluate one model on the profile's list of benchmarks: per-benchmark reports, a summary table
    (accuracy with its 95% interval beside the paper's number), MLflow runs."""
    from codedance_core.config import load_profile
    from codedance_core.config.evaluation import EvalConfig
    from codedance_core.evaluation.multi import evaluate_benchmarks, log_benchmark_runs
    from codedance_core.evaluation.summary import summary_markdown

    loaded = load_profile(profile, overrides or [])
    section = loaded.evaluation
    specs = [parse_bench(text) for text in bench] if bench else section.benchmarks
    base = EvalConfig(
        benchmark=specs[0].name if specs else "parquet", data_path=specs[0].path if specs else "",
        model_dir=str(model) if model else "", api_urls=[u.strip() for u in api_url.split(",") if u.strip()],
        model_name=model_name, device=device, save_path=save_path, samples=section.samples,
        rollout=loaded.rollout_for("evaluation"), num_workers=section.num_workers, limit=section.limit,
        use_judge=section.use_judge, prompt=prompt or section.prompt, write_viewer=section.write_viewer,
        rewards=loaded.rewards, sandbox=loaded.sandbox,
    )
    if base.model_dir:
        from codedance_core.models.check import check_model_dir

        check_model_dir(base.model_dir)
    outputs = evaluate_benchmarks(base, specs, show_progress=progress and not as_json)
    if mlflow:
        tracking = loaded.tracking
        run_id = log_benchmark_runs(outputs, tracking.tracking_uri, tracking.experiment,
                                    artifact_root=tracking.artifact_root)
        outputs.summary["mlflow_run_id"] = run_id
    if as_json:
        print(json.dumps({**outputs.summary, "outputs": {k: str(v) for k, v in outputs.paths.items()}}))
        return
    console.print(summary_markdown(outputs.summary))
    for path in outputs.paths.values():
        console.print(str(path))


def parse_bench(text: str):
    """`NAME=PATH[:LIMIT]` as a BenchmarkSpec (a bad one is a one-line error)."""
    from codedance_core.config.evaluation import BenchmarkSpec
    from codedance_core.errors import UserError

    name, sep, rest = text.partition("=")
    if not sep or not rest:
        raise UserError(f"--bench {text!r} is not NAME=PATH[:LIMIT]", "e.g. --bench vstar=vstar_bench/:50")
    path, _, limit = rest.rpartition(":") if rest.rpartition(":")[2].isdigit() else (rest, "", "")
    return BenchmarkSpec(name=name.strip(), path=path, limit=int(limit) if limit else None)
