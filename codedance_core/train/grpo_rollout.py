"""The rollout side of GRPO: one sandbox pool and event loop for the run, reproducible sampling,
and putting the trainer's weights into the engine.

Reproducibility. A step's rollouts are seeded (`seed + step`), but a seed alone does not fix what
a batched engine samples: on transformers, the random draws a row gets depend on which other
rows share its `generate` call and in what order, and the tool loop forms its batches as
trajectories come back from the sandbox, i.e. by timing. So, with `deterministic_rollout`:
- the loop waits for every live trajectory before each generation batch (turns in lockstep),
  which makes each batch's *set* of requests a function of the step alone;
- `CanonicalOrderEngine` orders every batch by content (token ids, then image bytes) before the
  engine sees it, which makes the *order* a function of the set;
- `canonical_group_order` sorts each group's trajectories by their tokens: two trajectories that
  were identical up to some turn may receive each other's samples from there on, depending on
  submission order, so only the group as a set is fixed -- and GRPO is invariant to the order
  inside a group.
That is what lets a run killed with SIGKILL resume to bit-identical parameters on CPU. vLLM
seeds each request on its own, so there it only costs the lockstep.

Weights. On CPU the hf engine generates with the trainer's very model object: nothing to sync.
A vLLM engine holds its own copy on the same GPU: `engine_released` puts it to sleep for the
update (its KV cache and weights' memory go to the optimizer) and wakes it with the new weights,
gathered in bfloat16 buckets by `train.weight_sync`.

Prompts. The RL rows are checked before the first step, as the data stage checks them (schema,
image markers, every image decoded): a bad row is quarantined beside the run with its reason and
counted, never silently skipped step after step; a file with no good row is `NoValidRowsError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Self

import torch

from codedance_core.agent.rollout import Rollout, RolloutStats
from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.config.agent import RolloutConfig, RolloutSettings
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams
from codedance_core.models.bundle import ModelBundle
from codedance_core.sandbox import SandboxPool
from codedance_core.train.weight_sync import Bucket, weight_buckets


def load_prompt_rows(
    data: str | Iterable[dict[str, Any]], run_dir: Path, write: bool = True
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The good RL rows of a parquet URI (or of rows given), and what became of the others.

    Bad rows go to `run_dir`/quarantine.parquet (the validator's layout: the row plus `reason` and
    `reason_detail`) when `write` (the main worker); the summary counts them by reason."""
    from codedance_core.data.quarantine import QUARANTINE_FILE
    from codedance_core.data.validate import split_rows

    rows, quarantine = split_rows(data, "rl")
    target = Path(run_dir) / QUARANTINE_FILE
    written = None
    if write:
        target.unlink(missing_ok=True)  # a resumed run's file is rewritten, never left stale
        written = quarantine.write(str(target))
    return rows, {
        "rows": len(rows) + len(quarantine),
        **quarantine.summary(),
        "quarantine_file": str(target) if written is not None else None,
    }


def request_key(request: GenerationRequest) -> tuple:
    """A content key of a request: its tokens (or messages), then a digest of its images' pixels."""
    tokens = tuple(request.token_ids) if request.token_ids is not None else ()
    messages = json.dumps(request.messages, sort_keys=True, default=str) if request.messages else ""
    digest = hashlib.sha1()
    for image in request.images:
        digest.update(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
    return (len(tokens), tokens, messages, digest.hexdigest())


class CanonicalOrderEngine(GenerationEngine):
    """Passes each batch to `inner` in content order and returns completions in request order."""

    def __init__(self, inner: GenerationEngine) -> None:
        self.inner = inner

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        keys = [request_key(request) for request in requests]
        order = sorted(range(len(requests)), key=keys.__getitem__)
        completions = self.inner.generate([requests[i] for i in order], params)
        result: list[Completion | None] = [None] * len(requests)
        for position, index in enumerate(order):
            result[index] = completions[position]
        return [completion for completion in result if completion is not None]

    def close(self) -> None:
        self.inner.close()


def canonical_group_order(trajectories: Sequence[Trajectory], group_size: int) -> list[Trajectory]:
    """Each consecutive group of `group_size` sorted by (token ids, response text); sample_index renumbered."""
    ordered: list[Trajectory] = []
    for start in range(0, len(trajectories), group_size):
        group = sorted(
            trajectories[start : start + group_size], key=lambda t: (t.token_ids, t.response_text)
        )
        for index, trajectory in enumerate(group):
            trajectory.sample_index = index
        ordered.extend(group)
    return ordered


def step_rollout_config(
    settings: RolloutSettings, samples_per_prompt: int, seed: int, lockstep: bool
) -> RolloutConfig:
    """RL's effective loop settings with GRPO's group size, this step's seed and its schedule:
    lockstep turns for deterministic rollouts, else continuous (no trajectory waits for the slowest)."""
    config = settings.for_stage(samples_per_prompt=samples_per_prompt, seed=seed)
    return config.model_copy(update={"lockstep": lockstep})


class RolloutRunner:
    """One event loop and one sandbox pool for a whole run (starting a pool costs seconds)."""

    def __init__(self, engine: GenerationEngine, sandbox: SandboxConfig, bundle: ModelBundle | None) -> None:
        self.engine = engine
        self.bundle = bundle
        self._runner = asyncio.Runner()
        self.pool = SandboxPool(sandbox)
        self._runner.run(self.pool.start())

    def rollout(self, items: Sequence[RolloutItem], config: RolloutConfig) -> tuple[list[Trajectory], RolloutStats]:
        loop = Rollout(self.engine, self.pool, config, bundle=self.bundle)
        trajectories = self._runner.run(loop.run(items))
        return trajectories, loop.stats

    def run(self, coroutine: Any) -> Any:
        """Run another coroutine (the judge's scoring) on the same loop."""
        return self._runner.run(coroutine)

    def close(self) -> None:
        try:
            self._runner.run(self.pool.close())
        finally:
            self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sync_vllm_weights(engine: Any, model: Any) -> int:
    """Load the trainer's current weights into a colocated vLLM engine: gathered bucket by bucket
    (collective under ZeRO-3: every rank calls this), in bfloat16, by checkpoint name, LoRA merged.
    Returns the number of tensors loaded."""
    return engine.load_weights(_bf16_buckets(engine, model))


def _bf16_buckets(engine: Any, model: Any) -> Iterator[Bucket]:
    return weight_buckets(model, engine.config.weight_sync_bucket_mb << 20, dtype=torch.bfloat16)


def engine_released(engine: Any, model: Any) -> AbstractContextManager[None]:
    """Wrap a policy update: a colocated vLLM engine sleeps through it, then wakes with the
    updated weights of `model` loaded. Nothing to do without one (the hf engine shares the model)."""
    if engine is None:
        return nullcontext()
    return engine.released_for_update(lambda: _bf16_buckets(engine, model))
