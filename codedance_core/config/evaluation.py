"""Configuration of one evaluation run: which benchmark, which model, how many samples, where results go.

The field names follow the original evaluation script's arguments (`model_name`, `api_url`,
`data_path`, `save_path`, `num_workers`, `data_source`) so a command line written for it reads
the same here; what the original lacked (`samples` for avg@k, a local `model_dir`, `limit`,
resumability) is added beside them.

The tool loop's settings are one `rollout` field (`RolloutSettings`), whose defaults are the
original evaluation script's: 7 model calls, 2048 tokens a turn, greedy. In the lifecycle they
come from the profile: its `rollout` section with the `evaluation.rollout` overrides applied,
which default to greedy decoding (as verl's `val_kwargs` do) and inherit everything else.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from codedance_core.config.agent import InheritsRollout, RolloutOverrides, RolloutSettings
from codedance_core.config.base import StrictModel
from codedance_core.config.model import PIXELS_PER_CELL
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig

# The original evaluation script's loop: 7 model calls of up to 2048 tokens, greedy.
HARNESS_ROLLOUT_DEFAULTS: dict[str, Any] = {"max_turns": 7, "max_new_tokens": 2048, "temperature": 0.0}
# What the lifecycle's evaluation changes in the profile's rollout section unless told otherwise.
STAGE_ROLLOUT_DEFAULTS: dict[str, Any] = {"temperature": 0.0}


# "original": the prompt the original evaluation script builds (our system prompt, the image, the
# question taken from the row, the instruction); "row": a row's own prompt where it has one (RL rows).
PromptChoice = Literal["original", "row"]
PROMPT_HELP = (
    "original: the original evaluation script's prompt (system prompt, image, the row's question, "
    "instruction) for every layout; row: the row's own prompt where it carries one (RL-layout rows)."
)


def _with_defaults(value: Any, defaults: dict[str, Any]) -> Any:
    """A partial mapping keeps the defaults it does not name (a plain default_factory would drop them)."""
    return {**defaults, **value} if isinstance(value, dict) else value


class EvalConfig(StrictModel):
    """One benchmark evaluated with one model (a served endpoint or a local checkpoint)."""

    benchmark: str = Field(
        "parquet",
        description="Registry entry (`codedance eval --help` lists them): suite, parquet, tsv, vstar, "
        "hrbench_4k, hrbench_8k, countbench, pixmo_count, chartqa, mathvista, mathverse, mathvision, wemath.",
    )
    data_path: str = Field(..., description="The benchmark's file (or folder, for vstar) on local disk.")
    data_source: str = Field(
        "", description="Overrides the data_source of every item (and the dataset name in output files)."
    )
    prompt: PromptChoice = Field("original", description=PROMPT_HELP)
    model_name: str = Field(
        "", description="Served model name ('' = first of /v1/models, or the model dir's name)."
    )
    api_urls: list[str] = Field(
        default_factory=list,
        description="OpenAI-compatible base URLs (…/v1), load-balanced; empty with model_dir.",
    )
    model_dir: str = Field(
        "", description="Local checkpoint evaluated in-process (no server); '' with api_urls."
    )
    device: str = Field("auto", description="Device of a local checkpoint: auto, cpu, cuda.")
    save_path: str = Field(
        "eval_results", description="Folder receiving result_*.jsonl, stats_*.json, the viewer and plot."
    )
    num_workers: int = Field(
        32, ge=1, description="Items in flight at once (HTTP), or items per generation batch (local model)."
    )
    samples: int = Field(1, ge=1, description="Trajectories per item; accuracy is then avg@k.")
    rollout: RolloutSettings = Field(
        default_factory=lambda: RolloutSettings(**HARNESS_ROLLOUT_DEFAULTS),
        description="The tool loop (defaults: the original's 7 model calls, 2048 tokens a turn, greedy; "
        "raise the temperature with samples > 1). early_sessions only applies to a local model.",
    )
    seed: int | None = Field(0, description="Sampling seed (None: not seeded).")
    limit: int | None = Field(None, ge=1, description="Only the first N items of the benchmark.")
    min_pixels: int = Field(
        4 * PIXELS_PER_CELL, ge=1, description="Smallest image area sent to an HTTP model."
    )
    max_pixels: int = Field(
        16384 * PIXELS_PER_CELL,
        ge=1,
        description="Largest image area sent to an HTTP model (the paper's bound).",
    )
    use_judge: bool = Field(
        True, description="Ask the LLM judge about answers no rule decides (needs rewards.judge endpoints)."
    )
    bootstrap_resamples: int = Field(
        2000, ge=100, description="Resamples of the bootstrap CI (used when k > 1)."
    )
    write_viewer: bool = Field(True, description="Write the HTML trajectory viewer and the PNG plot.")
    rewards: RewardConfig = Field(
        default_factory=RewardConfig, description="Scoring rules and the LLM judge."
    )
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where the model's code runs.")

    @field_validator("rollout", mode="before")
    @classmethod
    def _harness_defaults(cls, value: Any) -> Any:
        return _with_defaults(value, HARNESS_ROLLOUT_DEFAULTS)

    @model_validator(mode="after")
    def _one_model(self) -> EvalConfig:
        if bool(self.api_urls) == bool(self.model_dir):
            raise ValueError(
                "give exactly one of api_urls (a served model) or model_dir (a local checkpoint)"
            )
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self


class BenchmarkSpec(StrictModel):
    """One benchmark of a multi-benchmark evaluation: a registry entry and its file (or folder)."""

    name: str = Field(..., description="Registry entry (`codedance eval --help` lists them), e.g. vstar, chartqa.")
    path: str = Field(..., description="The benchmark's file or folder (local path or URI).")
    limit: int | None = Field(None, ge=1, description="Only the first N items.")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from codedance_core.evaluation.registry import get_benchmark

        get_benchmark(name)  # an unknown name fails with the list of known ones
        return name


class EvalStageConfig(StrictModel, InheritsRollout):
    """The `evaluation` section of a profile: how the lifecycle evaluates each checkpoint.

    The model, the data and the output folder change per checkpoint, so they are not here; the
    lifecycle turns this section into an `EvalConfig` for each (`for_checkpoint`).
    """

    benchmark: str = Field("suite", description="Registry entry evaluated by the lifecycle (the suite's test split).")
    samples: int = Field(1, ge=1, description="Trajectories per item (avg@k).")
    rollout: RolloutOverrides = Field(
        default_factory=lambda: RolloutOverrides(**STAGE_ROLLOUT_DEFAULTS),
        description="Evaluation's changes to the profile's rollout section: greedy (temperature 0, as in the "
        "original's validation) unless a temperature is given here (null inherits the profile's); every other "
        "field is inherited unless set.",
    )
    num_workers: int = Field(32, ge=1, description="Items per generation batch.")
    limit: int | None = Field(None, ge=1, description="Only the first N items.")
    prompt: PromptChoice = Field("original", description=PROMPT_HELP)
    benchmarks: list[BenchmarkSpec] = Field(
        default_factory=list,
        description="Benchmarks of `codedance eval-suite` and the evaluate-benchmarks flow: "
        "[{name, path, limit}], each a registry entry and its file or folder.",
    )
    use_judge: bool = Field(False, description="Use the LLM judge (needs rewards.judge endpoints).")
    promote_metric: str = Field("accuracy", description="The stats field that decides champion promotion.")
    write_viewer: bool = Field(True, description="Write the HTML trajectory viewer and the PNG plot with the results.")
    cpus: float = Field(1.0, gt=0, description="CPUs of the evaluation's Ray task.")
    gpus: float = Field(
        0.0, ge=0, description="GPUs of the evaluation's Ray task (the engine runs there: vLLM needs one or more)."
    )

    @field_validator("rollout", mode="before")
    @classmethod
    def _greedy_unless_set(cls, value: Any) -> Any:
        return _with_defaults(value, STAGE_ROLLOUT_DEFAULTS)

    def for_benchmark(self, spec: BenchmarkSpec) -> EvalStageConfig:
        """This section for one benchmark of `benchmarks` (the list left out: each benchmark's digest,
        and so its cached evaluation, does not depend on the others)."""
        limit = spec.limit if spec.limit is not None else self.limit
        return self.model_copy(update={"benchmark": spec.name, "limit": limit, "benchmarks": []})

    def for_checkpoint(
        self, data_path: str, model_dir: str, save_path: str, rewards: RewardConfig, sandbox: SandboxConfig,
        min_pixels: int, max_pixels: int, device: str = "auto", rollout: RolloutSettings | None = None,
        data_source: str = "",
    ) -> EvalConfig:
        """The harness config for one checkpoint. `rollout`: the inherited loop settings (the profile's
        section or `profile.rollout_for("evaluation")`); this section's overrides are applied to them."""
        return EvalConfig(
            benchmark=self.benchmark, data_path=data_path, model_dir=model_dir, save_path=save_path,
            samples=self.samples, rollout=self.rollout_settings(rollout), num_workers=self.num_workers,
            limit=self.limit, use_judge=self.use_judge, rewards=rewards, sandbox=sandbox, device=device,
            min_pixels=min_pixels, max_pixels=max_pixels, write_viewer=self.write_viewer, prompt=self.prompt,
            data_source=data_source,
        )
