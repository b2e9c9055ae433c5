"""One GPU's memory of the paper profile's SFT and RL stages, planned on a laptop, and what a refusal says."""

from __future__ import annotations

import pytest

from codedance_core.config import load_profile
from codedance_core.train.memory_plan import GIB, MemoryPlanError, grpo_memory, micro_batch_tokens, sft_memory
from codedance_core.train.model_shape import KNOWN_SHAPES

QWEN_7B = KNOWN_SHAPES["7b"]


def rl_memory(*overrides: str):
    profile = load_profile("paper", list(overrides))
    return grpo_memory(profile.grpo, profile.engine, QWEN_7B, profile.rollout_for("rl").max_context_tokens)


def sft_plan(*overrides: str):
    return sft_memory(load_profile("paper", list(overrides)).sft, QWEN_7B)


def gib(plan, item: str, phase: int = -1) -> float:
    return next(line.gib[phase] for line in plan.lines if line.item == item)


def test_the_paper_profile_fits_an_80_gb_gpu() -> None:
    rl, sft = rl_memory(), sft_plan()
    assert rl.fits and sft.fits and rl.refusal() is None
    assert rl.phases == ("rollout", "update") and 40 < rl.peak <= 80 and sft.peak <= 80
    rl.check()  # does not raise
    # The engine sleeps through the update: its weights are off the GPU then, and back for the rollout.
    assert gib(rl, "engine weights", 0) == pytest.approx(15.4, abs=0.1) and gib(rl, "engine weights", 1) == 0
    assert any("sequences of max_model_len 20480" in note for note in rl.notes)


def test_zero_3_splits_the_published_16_bytes_a_parameter_over_the_workers() -> None:
    # ZeRO's mixed-precision accounting: 2 (bf16 weights) + 2 (bf16 gradients) + 12 (fp32 master, m, v).
    single = sft_plan("sft.num_workers=1")
    trainable = QWEN_7B.language_params + QWEN_7B.merger_params  # the vision tower is frozen
    assert gib(single, "weights") * GIB == QWEN_7B.total_params * 2
    assert gib(single, "gradients") * GIB == trainable * 2
    assert gib(single, "optimizer states") * GIB == trainable * 12
    sixteen = sft_plan()
    for item in ("weights", "gradients", "optimizer states"):
        assert gib(sixteen, item) == pytest.approx(gib(single, item) / 16)
    zero_2 = sft_plan("sft.deepspeed_stage=2")
    assert gib(zero_2, "weights") == gib(single, "weights") and gib(zero_2, "gradients") == gib(sixteen, "gradients")


def test_without_gradient_checkpointing_it_does_not_fit_and_the_refusal_names_the_field() -> None:
    for plan, section in ((rl_memory("grpo.gradient_checkpointing=false"), "grpo"),
                          (sft_plan("sft.gradient_checkpointing=false"), "sft")):
        assert not plan.fits and plan.peak > 100
        assert f"{section}.gpu_memory_gb=80" in plan.refusal()
        assert f"set {section}.gradient_checkpointing=true" in plan.refusal()
        with pytest.raises(MemoryPlanError, match=f"{section}.gradient_checkpointing=true"):
            plan.check()


def test_a_doubled_token_budget_does_not_fit_and_the_budget_it_suggests_does() -> None:
    paper = load_profile("paper").grpo
    doubled = rl_memory(f"grpo.max_tokens_per_micro_batch={2 * paper.max_tokens_per_micro_batch}")
    assert micro_batch_tokens(paper, 20480) == paper.max_tokens_per_micro_batch  # the budget binds, not the rows
    assert not doubled.fits and doubled.peak_phase == "update"
    [suggestion] = [r for r in doubled.remedies if "max_tokens_per_micro_batch" in r]
    budget = int(suggestion.split("=")[1].split()[0])
    assert paper.max_tokens_per_micro_batch <= budget < 2 * paper.max_tokens_per_micro_batch
    assert rl_memory(f"grpo.max_tokens_per_micro_batch={budget}").fits
    assert not rl_memory(f"grpo.max_tokens_per_micro_batch={budget + 1024}").fits


def test_offload_moves_the_optimizer_to_the_host_and_lora_trains_a_sliver() -> None:
    offloaded = sft_plan("sft.offload_optimizer=true")
    assert gib(offloaded, "optimizer states") == 0
    assert any("host memory per worker" in note for note in offloaded.notes)
    lora = sft_plan("sft.lora.enabled=true", "sft.deepspeed_stage=2")  # LoRA is not sharded by ZeRO-3
    assert gib(lora, "optimizer states") < 0.01 * gib(sft_plan(), "optimizer states")


def test_an_engine_that_never_sleeps_keeps_its_share_through_the_update() -> None:
    awake = rl_memory("engine.sleep_mode=false")
    asleep = rl_memory()
    share = 0.5 * 80
    assert gib(awake, "engine weights", 1) + gib(awake, "engine KV cache + runtime", 1) == pytest.approx(share)
    assert awake.totals[1] == pytest.approx(asleep.totals[1] + share - 1.0)


def test_a_share_too_small_for_one_sequence_is_refused_as_vllm_would() -> None:
    plan = rl_memory("grpo.rollout_gpu_share=0.2")
    assert not plan.fits and "less than one max_model_len=20480 sequence" in plan.refusal()
    assert any(remedy.startswith("set grpo.rollout_gpu_share=0.3") for remedy in plan.remedies)


def test_cpu_workers_and_unknown_models_have_nothing_to_plan() -> None:
    tiny = load_profile("tiny")
    cpu = sft_memory(tiny.sft, QWEN_7B)
    assert cpu.fits and cpu.summary() == "n/a: trains on CPU (gpus_per_worker 0)"
    cpu.check()  # does not raise
    unknown = grpo_memory(load_profile("paper").grpo, load_profile("paper").engine, None, 20480)
    assert unknown.fits and unknown.summary().startswith("n/a: unknown model shape")
