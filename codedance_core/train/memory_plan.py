"""Per-GPU memory of a training stage, planned from its config before any work starts.

`sft_memory` and `grpo_memory` count what one worker's GPU holds, line by line, from the model's
shape (model_shape.py) and the stage's settings; nothing is loaded and torch is not imported, so a
laptop plans a cluster run (`codedance train rl --config paper --dry-run`) and a GPU stage refuses a
plan that cannot fit before it starts (`MemoryPlan.check`), naming what to change. A GiB is 2^30
bytes and `gpu_memory_gb` is read in GiB, the unit CUDA's own figures come in.

What is counted, and what it assumes:

- Weights: every parameter at 2 bytes (bf16 under DeepSpeed) or 4 (float32; also plain PyTorch,
  which keeps float32 weights under bf16 autocast and caches a bf16 copy of each for the forward,
  counted with the activations). ZeRO-3 splits them over the workers (one rank per worker).
- Gradients of the trainable parameters (the language model, plus the merger, or the vision tower
  too, or only LoRA adapters) in the weights' dtype; ZeRO-2 and 3 split them; plain DDP with
  several workers keeps a second, bucketed copy.
- Optimizer states: AdamW with float32 master weights, m and v is 4 + 4 + 4 = 12 bytes per trainable
  parameter (K = 12 of the ZeRO paper, Rajbhandari et al. 2020, which counts 2 + 2 + 12 = 16 bytes
  per parameter in mixed precision); 8 (m, v) when the weights are float32 already. ZeRO-2 and 3
  split them; `offload_optimizer` moves them (and the float32 gradients the CPU step reads, 4 more
  bytes) to host memory, shown below the table.
- Activations of one micro-batch of T padded tokens (GRPO: `max_tokens_per_micro_batch`, at most
  `micro_batch_size` full `max_context_tokens` trajectories and never less than one; SFT:
  `batch_size x max_length`), with h the hidden size, kv the key width, I the MLP width, a the
  activation bytes (2 in bf16). What autograd keeps per token and decoder layer, as transformers'
  Qwen2.5-VL layer is written: both RMSNorms' float32 inputs (8h bytes) and bf16 outputs, q, k, v,
  the attention output and o_proj's input (SDPA/flash attention keeps no T x T matrix), and the
  SwiGLU MLP's gate, up, SiLU and product: a(7h + 2kv + 4I) + 8h. With gradient checkpointing only
  each layer's input is kept (a*h per layer) and one layer is recomputed at a time; the backward
  of that layer adds three MLP-wide gradients (3aI); the residual stream's output, final norm and
  two gradients add 4ah. The frozen vision tower saves nothing; a trained merger saves its input and
  hidden layer (3a x 4 x vision width per image token), counted for every token as an upper bound.
- The log-prob chunk: C = `logprob_chunk_tokens` positions of full-vocabulary logits at once, four
  float32 copies' worth (the bf16 logits and their float32 cast, the log-softmax kept for backward,
  its gradient), one more when GRPO computes the entropy: C x vocab x 4 x 4 bytes.
- ZeRO buffers, at the sizes train/distributed.py configures (5e8-element buckets): ZeRO-3 holds a
  prefetch bucket, a reduce bucket and the largest module it gathers whole (the embeddings); ZeRO-2
  with overlap_comm holds 4.5x its allgather and reduce buckets (DeepSpeed's documented figure).
- Overhead: 3 GiB for the CUDA context, NCCL communicators and cuBLAS workspaces, plus 10% of the
  activations and log-prob chunk for the caching allocator's fragmentation.
- GRPO's colocated engine. vLLM takes `rollout_gpu_share` of the GPU while it samples: its weights
  (bf16, split by tensor parallelism), ~4 GiB of runtime (the profiled peak of the vision encoder
  and a prefill batch, CUDA graphs, sampler buffers) and a KV cache in the rest, whose size in tokens
  is that rest over 2 x layers x kv_heads x head_dim x 2 bytes per token; a cache too small for one
  `max_model_len` sequence is refused, as vLLM refuses to start. Asleep during the update
  (EngineConfig's `sleep_mode`: KV cache dropped, weights offloaded or discarded) it leaves ~1 GiB
  (CUDA context, graph pool); awake it keeps its whole share. Two phases, then: the rollout (the
  engine beside the trainer's weights, gradients and optimizer states) and the update (the
  trainer's activations beside the sleeping engine). The hf engine adds only its KV cache
  (max_batch_size full contexts).
- A KL reference model (`kl_coef` > 0) is a whole copy of the weights in the trainer's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codedance_core.config.model import EngineConfig
from codedance_core.config.train import GRPOConfig, SFTConfig, TrainerSettings
from codedance_core.train.model_shape import ModelShape

GIB = 2**30
MASTER_AND_ADAM_BYTES = 12  # float32 master weights, Adam m and v (the ZeRO paper's K = 12)
ADAM_BYTES = 8  # m and v beside float32 weights
REDUCE_BUCKET = 5e8  # elements: train/distributed.py's reduce_bucket_size
PREFETCH_BUCKET = 5e8  # elements: train/distributed.py's stage3_prefetch_bucket_size
ALLGATHER_BUCKET = 5e8  # elements: DeepSpeed's default allgather_bucket_size
OVERLAP_COMM_FACTOR = 4.5  # ZeRO-2's overlap_comm buffers, in bucket sizes (DeepSpeed's docs)
CUDA_OVERHEAD_GIB = 3.0
FRAGMENTATION = 0.10
LOGPROB_FLOAT32_COPIES = 4
ENGINE_RUNTIME_GIB = 4.0
ENGINE_ASLEEP_GIB = 1.0
TOKEN_STEP = 1024  # suggested token budgets are multiples of this


class MemoryPlanError(ValueError):
    """A training plan that does not fit its GPU; the message says what to change."""


@dataclass(frozen=True)
class MemoryLine:
    item: str
    gib: tuple[float, ...]  # one figure per phase
    how: str


@dataclass(frozen=True)
class MemoryPlan:
    """What one GPU of a training stage holds, per phase (SFT: the step; GRPO: rollout and update)."""

    section: str  # the profile section the settings come from: "sft" or "grpo"
    gpu_gib: float
    phases: tuple[str, ...] = ()
    lines: tuple[MemoryLine, ...] = ()
    model: str = ""
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # what cannot work whatever the total (a KV cache too small)
    not_planned: str | None = None  # why there is no plan (training on CPU, unknown model)
    remedies: tuple[str, ...] = field(default=(), compare=False)

    @property
    def totals(self) -> tuple[float, ...]:
        return tuple(sum(line.gib[i] for line in self.lines) for i in range(len(self.phases)))

    @property
    def peak(self) -> float:
        return max(self.totals, default=0.0)

    @property
    def peak_phase(self) -> str:
        return self.phases[self.totals.index(self.peak)] if self.phases else "-"

    @property
    def fits(self) -> bool:
        return self.not_planned is not None or (self.peak <= self.gpu_gib and not self.problems)

    def summary(self) -> str:
        if self.not_planned is not None:
            return f"n/a: {self.not_planned}"
        verdict = "fits" if self.fits else "DOES NOT FIT"
        return f"{self.peak:.1f} of {self.gpu_gib:g} GiB per GPU at the {self.peak_phase} ({verdict})"

    def refusal(self) -> str | None:
        """Why the plan does not fit and what to change, or None when it fits."""
        if self.fits:
            return None
        why = list(self.problems)
        if self.peak > self.gpu_gib:
            why.insert(0, f"the {self.section} plan needs {self.peak:.1f} GiB per GPU at the {self.peak_phase}, "
                          f"more than {self.section}.gpu_memory_gb={self.gpu_gib:g}")
        change = "; ".join(self.remedies) if self.remedies else "no single setting is enough: shard, shorten or add GPUs"
        return f"{'; '.join(why)}. Change: {change}."

    def check(self) -> None:
        """Raise `MemoryPlanError` naming what to change when the plan does not fit."""
        message = self.refusal()
        if message is not None:
            raise MemoryPlanError(message)

    def describe(self) -> dict[str, Any]:
        """The plan as plain values (what `--json` dry runs print)."""
        if self.not_planned is not None:
            return {"memory": self.summary()}
        return {
            "model": self.model, "gpu_gib": self.gpu_gib, "fits": self.fits, "summary": self.summary(),
            "gib": {phase: {line.item: round(line.gib[i], 2) for line in self.lines} | {"total": round(self.totals[i], 2)}
                    for i, phase in enumerate(self.phases)},
            "how": {line.item: line.how for line in self.lines}, "notes": list(self.notes),
            "problems": list(self.problems), "refusal": self.refusal(),
        }


Candidate = tuple[str, MemoryPlan | float, str]  # a change to suggest: (override, its plan or peak, a caveat)


# -- the trainer --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Precision:
    weight: int
    grad: int
    optimizer: int
    activation: int
    autocast_copy: int  # bf16 copies of float32 weights autocast caches during the forward
    weight_words: str
    optimizer_words: str


def _precision(settings: TrainerSettings) -> _Precision:
    bf16 = settings.dtype != "float32"  # auto is bfloat16 on a GPU, the only place a plan is made
    if settings.deepspeed_stage and bf16:
        return _Precision(2, 2, MASTER_AND_ADAM_BYTES, 2, 0, "bf16", "float32 master + Adam m, v")
    if bf16:
        return _Precision(4, 4, ADAM_BYTES, 2, 2, "float32, bf16 autocast", "Adam m, v")
    return _Precision(4, 4, ADAM_BYTES, 4, 0, "float32", "Adam m, v")


def trainable_params(settings: TrainerSettings, shape: ModelShape) -> tuple[int, str]:
    """Parameters the optimizer updates, and which they are."""
    if settings.lora.enabled:
        return shape.lora_params(settings.lora.rank, settings.lora.target_modules), f"LoRA r={settings.lora.rank}"
    if not settings.freeze_vision:
        return shape.language_params + shape.vision_tower_params + shape.merger_params, "language model + vision"
    if settings.train_merger:
        return shape.language_params + shape.merger_params, "language model + merger"
    return shape.language_params, "language model"


def activation_bytes_per_token(settings: TrainerSettings, shape: ModelShape) -> float:
    """Bytes one token of a micro-batch keeps for the backward pass at its peak (see the module doc)."""
    a = _precision(settings).activation
    h, kv, inner = shape.hidden_size, shape.kv_width, shape.intermediate_size
    layer = a * (7 * h + 2 * kv + 4 * inner) + 8 * h
    saved = shape.layers * a * h + layer if settings.gradient_checkpointing else shape.layers * layer
    per_token = saved + 3 * a * inner + 4 * a * h
    patches = shape.spatial_merge_size**2
    vh, vi = shape.vision_hidden_size, shape.vision_intermediate_size
    merger = 3 * a * patches * vh
    if settings.lora.enabled:
        return per_token
    if not settings.freeze_vision:  # every token counted as an image token: an upper bound
        block = a * (9 * vh + 4 * vi) + 8 * vh
        tower = shape.vision_depth * a * vh + block if settings.gradient_checkpointing else shape.vision_depth * block
        return per_token + patches * tower + merger
    return per_token + (merger if settings.train_merger else 0)


def _trainer_lines(settings: TrainerSettings, shape: ModelShape, tokens: int, entropy: bool, reference: bool,
                   phases: int) -> list[MemoryLine]:
    """The trainer's lines; the last phase is the step (activations), the others hold its state only."""
    p, stage, world = _precision(settings), settings.deepspeed_stage, settings.num_workers
    trainable, which = trainable_params(settings, shape)
    total = shape.total_params
    per_gpu = max(1, math.ceil(1 / settings.gpus_per_worker - 1e-9))  # workers sharing one GPU
    offload = settings.offload_optimizer and stage > 0

    def line(item: str, resident: float, step: float, how: str) -> MemoryLine:
        return MemoryLine(item, (resident * per_gpu / GIB,) * (phases - 1) + (step * per_gpu / GIB,), how)

    def split(div: int) -> str:
        return f" / {world} workers" if div > 1 else ""

    weight_div = world if stage == 3 else 1
    grad_div = world if stage >= 2 else 1
    weights = total * p.weight / weight_div
    grads = trainable * p.grad / grad_div + (trainable * p.grad if stage == 0 and world > 1 else 0)
    optimizer = 0 if offload else trainable * p.optimizer / grad_div
    lines = [
        line("weights", weights, weights, f"{total / 1e9:.2f}B params x {p.weight} B ({p.weight_words}){split(weight_div)}"),
        line("gradients", grads, grads, f"{trainable / 1e9:.2f}B trainable ({which}) x {p.grad} B{split(grad_div)}"
             + (" + DDP buckets" if stage == 0 and world > 1 else "")),
        line("optimizer states", optimizer, optimizer, "offloaded to host memory" if offload
             else f"{trainable / 1e9:.2f}B x {p.optimizer} B ({p.optimizer_words}){split(grad_div)}"),
    ]
    if reference:
        ref = total * p.weight
        lines.append(line("reference model", ref, ref, f"KL reference: {total / 1e9:.2f}B x {p.weight} B, whole"))
    per_token = activation_bytes_per_token(settings, shape)
    autocast = total * p.autocast_copy
    activations = tokens * per_token + autocast
    lines.append(line("activations", 0, activations, f"{tokens} tokens x {per_token / 2**10:.0f} KiB"
                      + (" (checkpointed)" if settings.gradient_checkpointing else " (no checkpointing)")
                      + (" + autocast weight copies" if autocast else "")))
    chunk = min(settings.logprob_chunk_tokens, tokens)
    copies = LOGPROB_FLOAT32_COPIES + (1 if entropy else 0)
    logprob = chunk * shape.vocab_size * 4 * copies
    lines.append(line("log-prob chunk", 0, logprob, f"{chunk} x {shape.vocab_size} vocab x 4 B x {copies}"))
    if stage:
        gathered = min(total, PREFETCH_BUCKET + REDUCE_BUCKET) + shape.largest_module_params
        buffers = (gathered if stage == 3 else OVERLAP_COMM_FACTOR * min(total, REDUCE_BUCKET + ALLGATHER_BUCKET))
        lines.append(line("ZeRO buffers", buffers * p.weight, buffers * p.weight,
                          "prefetch + reduce buckets + largest gathered module" if stage == 3
                          else "overlap_comm: 4.5 x (reduce + allgather buckets)"))
    overhead = CUDA_OVERHEAD_GIB * GIB
    lines.append(line("overhead", overhead, overhead + FRAGMENTATION * (activations + logprob),
                      f"CUDA context, NCCL, workspaces ({CUDA_OVERHEAD_GIB:g} GiB) + {FRAGMENTATION:.0%} fragmentation"))
    return lines


def _notes(settings: TrainerSettings, shape: ModelShape, tokens: int) -> tuple[str, ...]:
    """Activations both ways (checkpointing is the largest lever) and the host memory offload takes."""
    with_, without = (tokens * activation_bytes_per_token(settings.model_copy(update={"gradient_checkpointing": on}),
                                                          shape) / GIB for on in (True, False))
    notes = (f"activations of {tokens} tokens: {with_:.1f} GiB with gradient checkpointing, {without:.1f} GiB without",)
    if not (settings.offload_optimizer and settings.deepspeed_stage):
        return notes
    trainable, _ = trainable_params(settings, shape)
    host = trainable * (MASTER_AND_ADAM_BYTES + 4) / settings.num_workers / GIB
    return (*notes, f"host memory per worker for the offloaded optimizer: {host:.1f} GiB")


def _not_planned(section: str, settings: TrainerSettings, shape: ModelShape | None) -> MemoryPlan | None:
    if settings.gpus_per_worker == 0:
        return MemoryPlan(section, settings.gpu_memory_gb, not_planned="trains on CPU (gpus_per_worker 0)")
    if shape is None:
        return MemoryPlan(section, settings.gpu_memory_gb, not_planned="unknown model shape (no Qwen2.5-VL "
                          "config.json, no Qwen2.5-VL size in the model's name)")
    return None


# -- SFT ------------------------------------------------------------------------------------------
def sft_memory(config: SFTConfig, shape: ModelShape | None) -> MemoryPlan:
    """Per-GPU memory of an SFT step; `remedies` filled when it does not fit."""
    plan = _sft(config, shape)
    if plan.fits:
        return plan
    candidates = _common_remedies("sft", config, lambda c: _sft(c, shape).peak)
    if config.batch_size > 1:
        candidates.append(("sft.batch_size=1", _sft(config.model_copy(update={"batch_size": 1}), shape),
                           "raise grad_accumulation to keep the batch"))
    length = _largest_fitting(lambda n: _sft(config.model_copy(update={"max_length": n}), shape), 1, config.max_length)
    if length is not None:
        candidates.append((f"sft.max_length={length}", _sft(config.model_copy(update={"max_length": length}), shape),
                           "longer rows are truncated"))
    return _with_remedies(plan, candidates)


def _sft(config: SFTConfig, shape: ModelShape | None) -> MemoryPlan:
    skipped = _not_planned("sft", config, shape)
    if skipped is not None:
        return skipped
    assert shape is not None
    tokens = config.batch_size * config.max_length
    lines = _trainer_lines(config, shape, tokens, entropy=False, reference=False, phases=1)
    return MemoryPlan("sft", config.gpu_memory_gb, ("step",), tuple(lines), f"{shape.name}: {shape.source}",
                      _notes(config, shape, tokens))


# -- GRPO -----------------------------------------------------------------------------------------
def grpo_memory(config: GRPOConfig, engine: EngineConfig, shape: ModelShape | None, max_context_tokens: int) -> MemoryPlan:
    """Per-GPU memory of a GRPO worker at the rollout and at the update; `remedies` filled when it does not fit."""
    plan = _grpo(config, engine, shape, max_context_tokens)
    if plan.fits:
        return plan

    def replan(settings: GRPOConfig, engine_config: EngineConfig = engine) -> MemoryPlan:
        return _grpo(settings, engine_config, shape, max_context_tokens)

    candidates = _common_remedies("grpo", config, lambda c: replan(c).peak)
    budget = _largest_fitting(lambda n: replan(config.model_copy(update={"max_tokens_per_micro_batch": n})),
                              max_context_tokens, micro_batch_tokens(config, max_context_tokens))
    if budget is not None:
        candidates.append((f"grpo.max_tokens_per_micro_batch={budget}",
                           replan(config.model_copy(update={"max_tokens_per_micro_batch": budget})), ""))
    if engine.kind == "vllm" and not engine_sleeps(engine) and "sleep_mode" in EngineConfig.model_fields:
        candidates.append(("engine.sleep_mode=true", replan(config, engine.model_copy(update={"sleep_mode": True})), ""))
    if engine.kind == "vllm":  # the largest share that fits; the smallest when the KV cache is too small
        shares = [share for share in (round(0.05 * step, 2) for step in range(1, 20))
                  if replan(config.model_copy(update={"rollout_gpu_share": share})).fits]
        if shares:
            share = min(shares) if plan.problems else max(shares)
            candidates.append((f"grpo.rollout_gpu_share={share:g}",
                               replan(config.model_copy(update={"rollout_gpu_share": share})), ""))
    return _with_remedies(plan, candidates)


def micro_batch_tokens(config: GRPOConfig, max_context_tokens: int) -> int:
    """Padded tokens of GRPO's largest micro-batch (train/grpo_step.py's `plan_micro_batches`): at most
    micro_batch_size whole trajectories, within the token budget when there is one, yet never less
    than one whole trajectory (a longer one goes alone)."""
    whole = config.micro_batch_size * max_context_tokens
    if config.max_tokens_per_micro_batch is None:
        return whole
    return max(min(config.max_tokens_per_micro_batch, whole), max_context_tokens)


def engine_sleeps(engine: EngineConfig) -> bool:
    """Whether a colocated vLLM engine sleeps during the update (EngineConfig's `sleep_mode`, on by default)."""
    return engine.kind == "vllm" and bool(getattr(engine, "sleep_mode", True))


def _grpo(config: GRPOConfig, engine: EngineConfig, shape: ModelShape | None, max_context_tokens: int) -> MemoryPlan:
    skipped = _not_planned("grpo", config, shape)
    if skipped is not None:
        return skipped
    assert shape is not None
    tokens = micro_batch_tokens(config, max_context_tokens)
    lines = _trainer_lines(config, shape, tokens, entropy=config.entropy_coef > 0, reference=config.kl_coef > 0,
                           phases=2)
    engine_lines, notes, problems = _engine(config, engine, shape, max_context_tokens)
    return MemoryPlan("grpo", config.gpu_memory_gb, ("rollout", "update"), tuple(lines[:-1] + engine_lines + lines[-1:]),
                      f"{shape.name}: {shape.source}", _notes(config, shape, tokens) + notes, problems)


def _engine(config: GRPOConfig, engine: EngineConfig, shape: ModelShape,
            max_context_tokens: int) -> tuple[list[MemoryLine], tuple[str, ...], tuple[str, ...]]:
    """The rollout engine's lines (rollout, update), notes and problems."""
    value_bytes = 4 if engine.dtype == "float32" else 2
    if engine.kind != "vllm":  # hf: the trainer's own model generates, with a KV cache of its batch
        cache = engine.max_batch_size * max_context_tokens * shape.kv_bytes_per_token(value_bytes) / GIB
        return ([MemoryLine("engine KV cache", (cache, 0.0), f"hf: {engine.max_batch_size} x {max_context_tokens} tokens")],
                ("the hf engine generates with the trainer's model: no weights of its own",), ())
    parallel = engine.tensor_parallel_size
    share = config.rollout_gpu_share * config.gpu_memory_gb
    weights = shape.total_params * value_bytes / parallel / GIB
    rest = max(share - weights, 0.0)  # less than nothing: the engine cannot start (a problem below)
    cache = rest - ENGINE_RUNTIME_GIB
    tokens = int(max(cache, 0) * GIB / (shape.kv_bytes_per_token(value_bytes) / parallel))
    asleep = engine_sleeps(engine)
    lines = [
        MemoryLine("engine weights", (weights, 0.0 if asleep else weights),
                   f"vLLM, bf16{f' / TP {parallel}' if parallel > 1 else ''}; offloaded while asleep" if asleep
                   else "vLLM, kept during the update (no sleep mode)"),
        MemoryLine("engine KV cache + runtime", (rest, ENGINE_ASLEEP_GIB if asleep else rest),
                   f"rest of rollout_gpu_share={config.rollout_gpu_share:g}; asleep: ~{ENGINE_ASLEEP_GIB:g} GiB"
                   if asleep else f"rest of rollout_gpu_share={config.rollout_gpu_share:g}, kept during the update"),
    ]
    note = (f"vLLM KV cache: {max(cache, 0):.1f} GiB = {tokens} tokens = {tokens // engine.max_model_len} sequences "
            f"of max_model_len {engine.max_model_len} at once ({shape.kv_bytes_per_token(value_bytes) // 1024} KiB "
            "a token)")
    if tokens >= engine.max_model_len:
        return lines, (note,), ()
    problem = (f"the vLLM KV cache holds {tokens} tokens, less than one max_model_len={engine.max_model_len} "
               "sequence (vLLM would refuse to start)")
    return lines, (note,), (problem,)


# -- what to change -----------------------------------------------------------------------------
def _common_remedies(section: str, settings: Any, peak_of: Callable[[Any], float]) -> list[Candidate]:
    """Changes of the shared trainer settings that lower the peak, each with what it would give."""
    options: list[tuple[str, dict[str, Any], str]] = []
    if not settings.gradient_checkpointing:
        options.append((f"{section}.gradient_checkpointing=true", {"gradient_checkpointing": True}, ""))
    best_stage = 2 if settings.lora.enabled else 3  # ZeRO-3 does not shard LoRA (config refuses it)
    if settings.deepspeed_stage < best_stage:
        options.append((f"{section}.deepspeed_stage={best_stage}", {"deepspeed_stage": best_stage}, ""))
    if settings.deepspeed_stage and not settings.offload_optimizer:
        options.append((f"{section}.offload_optimizer=true", {"offload_optimizer": True}, "slower steps"))
    if settings.logprob_chunk_tokens > 256:
        options.append((f"{section}.logprob_chunk_tokens=256", {"logprob_chunk_tokens": 256}, ""))
    if settings.deepspeed_stage:
        for workers in (settings.num_workers * 2**k for k in range(1, 7)):
            if _workers_allowed(settings, workers) and peak_of(settings.model_copy(update={"num_workers": workers})) \
                    <= settings.gpu_memory_gb:
                options.append((f"{section}.num_workers={workers}", {"num_workers": workers}, "more GPUs"))
                break
    return [(text, peak_of(settings.model_copy(update=update)), caveat) for text, update, caveat in options]


def _workers_allowed(settings: Any, workers: int) -> bool:
    """GRPO splits a step's prompts evenly over the workers (its config's own rule)."""
    prompts = getattr(settings, "prompts_per_step", None)
    return prompts is None or (prompts % workers == 0 and (prompts // workers) % settings.mini_batches_per_step == 0)


def _largest_fitting(plan_of: Callable[[int], MemoryPlan], low: int, high: int) -> int | None:
    """The largest multiple of TOKEN_STEP in [low, high) whose plan fits (peaks grow with tokens)."""
    steps = [n for n in range(high - high % TOKEN_STEP, 0, -TOKEN_STEP) if low <= n < high]
    lo, hi = 0, len(steps)  # steps descend: find the first that fits
    while lo < hi:
        mid = (lo + hi) // 2
        if plan_of(steps[mid]).fits:
            hi = mid
        else:
            lo = mid + 1
    return steps[lo] if lo < len(steps) else None


def _with_remedies(plan: MemoryPlan, candidates: list[Candidate]) -> MemoryPlan:
    """The plan with the changes that make it fit alone (or, when none does, those that help)."""
    def outcome(result: MemoryPlan | float) -> tuple[float, bool]:
        if isinstance(result, MemoryPlan):
            return result.peak, result.fits
        return result, result <= plan.gpu_gib and not plan.problems

    scored = [(f"{text} ({outcome(result)[0]:.1f} GiB{'; ' + caveat if caveat else ''})", *outcome(result))
              for text, result, caveat in candidates]
    enough = [f"set {text}" for text, _, fits in scored if fits]
    helping = [text for text, peak, _ in scored if peak < plan.peak]
    remedies = enough or ([f"several of {', '.join(helping)}"] if helping else [])
    return MemoryPlan(plan.section, plan.gpu_gib, plan.phases, plan.lines, plan.model, plan.notes, plan.problems,
                      plan.not_planned, tuple(remedies))
