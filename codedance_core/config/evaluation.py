"""Configuration of one evaluation run: which benchmark, which model, how many samples, where results go.

The field names follow the original evaluation script's arguments (`model_name`, `api_url`,
`data_path`, `save_path`, `num_workers`, `data_source`) so a command line written for it reads
the same here; what the original lacked (`samples` for avg@k, a local `model_dir`, `limit`,
resumability) is added beside them.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from codedance_core.config.base import StrictModel
from codedance_core.config.model import PIXELS_PER_CELL
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig


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
    max_turns: int = Field(
        7, ge=1, description="Model calls per trajectory at most (7 in the original's evaluation)."
    )
    max_new_tokens: int = Field(2048, ge=1, description="Tokens one assistant turn may generate.")
    temperature: float = Field(
        0.0, ge=0, description="Sampling temperature (0 = greedy; raise it with samples > 1)."
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

    @model_validator(mode="after")
    def _one_model(self) -> EvalConfig:
        if bool(self.api_urls) == bool(self.model_dir):
            raise ValueError(
                "give exactly one of api_urls (a served model) or model_dir (a local checkpoint)"
            )
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self


class EvalStageConfig(StrictModel):
    """The `evaluation` section of a profile: how the lifecycle evaluates each checkpoint.

    The model, the data and the output folder change per checkpoint, so they are not here; the
    lifecycle turns this section into an `EvalConfig` for each (`for_checkpoint`).
    """

    benchmark: str = Field("suite", description="Registry entry evaluated by the lifecycle (the suite's test split).")
    samples: int = Field(1, ge=1, description="Trajectories per item (avg@k).")
    max_turns: int = Field(6, ge=1, description="Model calls per trajectory at most.")
    max_new_tokens: int = Field(256, ge=1, description="Tokens one assistant turn may generate.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy, as in the original's validation.")
    num_workers: int = Field(32, ge=1, description="Items per generation batch.")
    limit: int | None = Field(None, ge=1, description="Only the first N items.")
    use_judge: bool = Field(False, description="Use the LLM judge (needs rewards.judge endpoints).")
    promote_metric: str = Field("accuracy", description="The stats field that decides champion promotion.")

    def for_checkpoint(
        self, data_path: str, model_dir: str, save_path: str, rewards: RewardConfig, sandbox: SandboxConfig,
        min_pixels: int, max_pixels: int, device: str = "auto",
    ) -> EvalConfig:
        return EvalConfig(
            benchmark=self.benchmark, data_path=data_path, model_dir=model_dir, save_path=save_path,
            samples=self.samples, max_turns=self.max_turns, max_new_tokens=self.max_new_tokens,
            temperature=self.temperature, num_workers=self.num_workers, limit=self.limit,
            use_judge=self.use_judge, rewards=rewards, sandbox=sandbox, device=device,
            min_pixels=min_pixels, max_pixels=max_pixels,
        )
