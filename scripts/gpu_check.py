"""The GPU check: the paper profile's training path on one real GPU, at 1-3 B parameters, in minutes.

Run on a GPU machine by `scripts/gpu_check.sh` (which installs the wheels the image lacks); here,
`python scripts/gpu_check.py --size tiny --out /tmp/gpu-check` runs the same code on the CPU at toy
size, to catch mistakes before a GPU is lent. Nothing is downloaded: the model is a Qwen2.5-VL
architecture with random weights, built locally (a tokenizer fitted to the task suite, the
Qwen2.5 vocabulary width for the LM head), and every phase goes through the library's own code:

1. SFT steps under DeepSpeed ZeRO-3 (bf16 weights, float32 master weights, gradient checkpointing,
   chunked loss): tokens/s, MFU against the GPU's dense bf16 peak, peak memory against the
   memory planner's estimate (`train/memory_plan.py`);
2. one GRPO step under ZeRO-3 with real multi-turn rollouts of the HF engine on the GPU (the
   sandbox without isolation: the image has no bubblewrap), scoring and the update;
3. the HF engine's generation speed on the GPU;
4. chunked log-probs (`train/token_logprobs.py`) against the plain full-vocabulary computation:
   largest difference, time and peak memory of each.

Each phase's figures (or its error) go to `<out>/gpu_check.json`; one phase failing does not stop
the others.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

# name -> (TinyModelConfig fields, LM-head vocabulary width). "1.2b" (1.18 B parameters): Qwen2.5-1.5B's text width and
# heads at 16 layers, a frozen 8-block vision tower of the 7B's width.
SIZES: dict[str, tuple[dict[str, Any], int | None]] = {
    "1.2b": (
        {
            "text_layers": 16, "hidden_size": 1536, "intermediate_size": 8960, "attention_heads": 12,
            "kv_heads": 2, "vision_depth": 8, "vision_hidden_size": 1280, "vision_intermediate_size": 3420,
            "vision_heads": 16, "max_position_embeddings": 32768,
        },
        151936,
    ),
    "tiny": ({}, None),
}
H100_H200_BF16_TFLOPS = 790.0  # dense bf16 peak the MFU is measured against


def build_model(out: Path, size: str, device: torch.device) -> Path:
    from codedance_core.config.model import TinyModelConfig
    from codedance_core.models.tiny import build_tiny_model, suite_corpus

    fields, vocab = SIZES[size]
    config = TinyModelConfig(**fields, pretrain_text_steps=0, pretrain_steps=0)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return build_tiny_model(out, suite_corpus(rows=400), config, vocab_size=vocab, device=device, dtype=dtype)


def sft_rows(tokenizer: Any, count: int, tokens: int) -> list[dict[str, Any]]:
    """Two-turn trajectories of about `tokens` tokens: an image, a long code turn, a tool image, an answer."""
    from PIL import Image

    from codedance_core.data.images import encode_png

    line = "part = input_image.crop(({k}, {k}, {k} + 32, {k} + 32)).resize((64, 64))\nprint(part.size, {k})\n"
    per_line = len(tokenizer(line.format(k=123))["input_ids"])
    code = "".join(line.format(k=k) for k in range(max(1, (tokens - 200) // per_line)))
    rows = []
    for index in range(count):
        rows.append({
            "messages": [
                {"role": "system", "content": "You may write Python."},
                {"role": "user", "content": f"<image>\nHow many dots are there? ({index})"},
                {"role": "assistant", "content": f"<think>Zoom in.</think>\n<code>\n```python\n{code}```\n</code>"},
                {"role": "tool", "content": "<tool_response>\nExecution succeeded.\n1 image: <image>\n</tool_response>"},
                {"role": "assistant", "content": f"<think>I count {index % 9}.</think>\n<answer>{index % 9}</answer>"},
            ],
            "images": [
                {"bytes": encode_png(Image.new("RGB", (448, 448), (index % 255, 40, 90))), "path": None},
                {"bytes": encode_png(Image.new("RGB", (224, 224), (200, index % 255, 10))), "path": None},
            ],
        })
    return rows


def fresh(folder: Path) -> Path:
    """An empty run folder: a run folder holding a finished run would resume it and train nothing."""
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def trainer_settings(device: torch.device) -> dict[str, Any]:
    gpu = device.type == "cuda"
    return {
        "deepspeed_stage": 3, "gpus_per_worker": 1 if gpu else 0, "dtype": "bfloat16" if gpu else "float32",
        "gradient_checkpointing": True, "logprob_chunk_tokens": 1024, "gpu_memory_gb": 139.0,
    }


def check_sft(model_dir: Path, work: Path, device: torch.device, tokens: int, steps: int) -> dict[str, Any]:
    from codedance_core.config.train import SFTConfig
    from codedance_core.models.bundle import load_model_bundle
    from codedance_core.train.memory_plan import sft_memory
    from codedance_core.train.model_shape import model_shape
    from codedance_core.train.sft import train_sft

    tokenizer = load_model_bundle(model_dir, device="cpu", dtype="float32").tokenizer
    config = SFTConfig(
        **trainer_settings(device), max_steps=steps, batch_size=1, grad_accumulation=1, max_length=tokens + 1024,
        learning_rate=1e-5, warmup_ratio=0.0, checkpoint_every=10**6, keep_checkpoints=1,
    )
    reset_peak(device)
    result = train_sft(config, sft_rows(tokenizer, steps, tokens), model_dir, fresh(work / "sft"), progress=False)
    timed = result.history[1:] or result.history  # the first step pays for warm-up
    tokens_per_s = sum(row["tokens"] for row in timed) / sum(row["step_s"] for row in timed)
    shape = model_shape(str(model_dir))
    flops_per_token = 6 * shape.language_params + 12 * shape.layers * shape.hidden_size * tokens
    plan = sft_memory(config, shape)
    return {
        "steps": result.steps,
        "tokens_per_step": timed[-1]["tokens"],
        "losses": [row["loss"] for row in result.history],
        "tokens_per_s": tokens_per_s,
        "mfu": flops_per_token * tokens_per_s / (H100_H200_BF16_TFLOPS * 1e12),
        "peak_memory_gib": peak_gib(device),
        "planned_peak_gib": plan.peak if plan.lines else None,
        "language_params": shape.language_params,
        "total_params": shape.total_params,
    }


def check_grpo(model_dir: Path, work: Path, device: torch.device, new_tokens: int) -> dict[str, Any]:
    from codedance_core.config.agent import RolloutSettings
    from codedance_core.config.data import SuiteSpec
    from codedance_core.config.model import EngineConfig
    from codedance_core.config.sandbox import SandboxConfig
    from codedance_core.config.train import GRPOConfig
    from codedance_core.data.suite import generate_rows
    from codedance_core.train.grpo import train_grpo

    config = GRPOConfig(
        **trainer_settings(device), prompts_per_step=8, samples_per_prompt=4, max_steps=1, learning_rate=1e-6,
        micro_batch_size=8, max_tokens_per_micro_batch=16384, checkpoint_every=10**6, keep_checkpoints=1,
        deterministic_rollout=False,
    )
    rows = list(generate_rows(SuiteSpec(n=8, seed=0, split="train")))
    rollout = RolloutSettings(max_turns=2, max_new_tokens=new_tokens, temperature=1.0)
    engine = EngineConfig(kind="hf", model=str(model_dir), max_batch_size=32)
    reset_peak(device)
    result = train_grpo(
        config, rows, model_dir, fresh(work / "grpo"), rollout=rollout, engine=engine,
        sandbox=SandboxConfig(isolation="none"), progress=False,
    )
    row = result.history[-1]
    keys = ("rollout_s", "engine_s", "sandbox_s", "scoring_s", "update_s", "step_s", "response_length",
            "rollout_logprob_abs_diff", "grad_norm", "loss", "accuracy", "tool_calls")
    return {"steps": result.steps, **{key: row[key] for key in keys if key in row},
            "peak_memory_gib": peak_gib(device)}


def check_generation(model_dir: Path, device: torch.device, new_tokens: int, prompts: int) -> dict[str, Any]:
    from codedance_core.engines.base import GenerationRequest, SamplingParams
    from codedance_core.engines.hf import HFEngine
    from codedance_core.models.bundle import load_model_bundle

    bundle = load_model_bundle(model_dir, device=str(device), dtype="bfloat16" if device.type == "cuda" else "float32")
    engine = HFEngine(bundle, max_batch_size=prompts)
    requests = [
        GenerationRequest(messages=[{"role": "user", "content": f"Write Python that counts to {i}."}])
        for i in range(prompts)
    ]
    params = SamplingParams(max_new_tokens=new_tokens, temperature=1.0, seed=0)
    engine.generate(requests[:2], SamplingParams(max_new_tokens=8, temperature=1.0, seed=0))  # warm-up
    reset_peak(device)
    started = time.perf_counter()
    completions = engine.generate(requests, params)
    seconds = time.perf_counter() - started
    generated = sum(len(c.token_ids) for c in completions)
    return {"prompts": prompts, "generated_tokens": generated, "seconds": seconds,
            "tokens_per_s": generated / seconds, "peak_memory_gib": peak_gib(device)}


def check_logprobs(model_dir: Path, device: torch.device, tokens: int) -> dict[str, Any]:
    from codedance_core.models.bundle import load_model_bundle
    from codedance_core.train.token_logprobs import token_scores

    bundle = load_model_bundle(model_dir, device=str(device), dtype="bfloat16" if device.type == "cuda" else "float32")
    model = bundle.model.train()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, len(bundle.tokenizer), (2, tokens), generator=generator).to(device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    targets, scored = ids[:, 1:], torch.ones_like(ids[:, 1:], dtype=torch.bool)

    def timed(run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float, float | None]:
        reset_peak(device)
        started = time.perf_counter()
        logprobs = run()
        logprobs.sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        model.zero_grad(set_to_none=True)
        return logprobs.detach(), time.perf_counter() - started, peak_gib(device)

    def plain() -> torch.Tensor:
        logits = model(**inputs, use_cache=False).logits[:, :-1].float()
        return torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)

    def chunked() -> torch.Tensor:
        return token_scores(model, inputs, targets, scored, 1.0, 1024).logprobs

    reference, plain_s, plain_peak = timed(plain)
    result, chunked_s, chunked_peak = timed(chunked)
    return {
        "tokens": 2 * tokens,
        "max_abs_diff": float((reference - result).abs().max()),
        "mean_abs_diff": float((reference - result).abs().mean()),
        "plain_s": plain_s, "chunked_s": chunked_s,
        "plain_peak_gib": plain_peak, "chunked_peak_gib": chunked_peak,
    }


def run_phase(name: str, report: dict[str, Any], out: Path, phase: Callable[[], dict[str, Any]]) -> None:
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    try:
        report[name] = phase()
    except Exception as error:  # noqa: BLE001 - a failed phase is a finding; the others still run
        traceback.print_exc()
        report[name] = {"error": f"{type(error).__name__}: {error}"}
    report[name]["wall_s"] = round(time.perf_counter() - started, 2)
    print(json.dumps({name: report[name]}, default=str), flush=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1.2b", help="model size (tiny: a CPU smoke run)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")), help="folder for gpu_check.json")
    parser.add_argument("--work", type=Path, default=Path("/tmp/codedance-gpu-check"), help="scratch folder")
    parser.add_argument("--sft-tokens", type=int, default=None, help="tokens per SFT sequence")
    parser.add_argument("--sft-steps", type=int, default=4, help="SFT steps (the first is not timed)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per generated turn")
    args = parser.parse_args()
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    big = args.size != "tiny"
    sft_tokens = args.sft_tokens or (8192 if big else 256)
    new_tokens = args.new_tokens or (256 if big else 16)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "size": args.size,
    }
    import transformers

    report["transformers"] = transformers.__version__
    model_dir = args.work / f"model-{args.size}"
    run_phase("build", report, args.out, lambda: {"model_dir": str(build_model(model_dir, args.size, device))})
    run_phase("logprobs", report, args.out, lambda: check_logprobs(model_dir, device, 4096 if big else 64))
    run_phase("generation", report, args.out, lambda: check_generation(model_dir, device, new_tokens, 32 if big else 4))
    run_phase("sft_zero3", report, args.out,
              lambda: check_sft(model_dir, args.work, device, sft_tokens, args.sft_steps))
    run_phase("grpo_zero3", report, args.out, lambda: check_grpo(model_dir, args.work, device, new_tokens))
    failed = [name for name, value in report.items() if isinstance(value, dict) and "error" in value]
    print(f"gpu check: {len(failed)} phase(s) failed {failed}" if failed else "gpu check: every phase ran")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
