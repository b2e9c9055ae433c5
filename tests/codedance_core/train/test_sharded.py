"""Sharded training on CPU: DeepSpeed ZeRO-3 over gloo, for SFT and GRPO, as the paper profile runs it.

Two workers under Ray Train (the training stages' own launch path) train the tiny model with ZeRO-3
and end where one plain process ends on the same batches; a GRPO update split over two ZeRO-3
ranks equals the one-process update; and a ZeRO-3 run killed with SIGKILL resumes to exactly the
parameters of a run that never stopped (two processes under torchrun: killing them is simple).

Tolerance: two ranks sum gradients in another order than one process, so float32 results differ
by rounding only; 1e-4 absolute on the weights, against updates of about 1e-2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.config.agent import RolloutOverrides, RolloutSettings
from codedance_core.config.model import EngineConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import GRPOConfig, SFTConfig
from codedance_core.data.schemas import RL_ARROW_SCHEMA, SFT_ARROW_SCHEMA
from codedance_core.models import load_model_bundle
from codedance_core.rewards.score import BatchRewards
from codedance_core.stages.context import CallId
from codedance_core.stages.launch import launch
from codedance_core.stages.training import RLSections, TrainingCall, rl_plan, sft_plan
from codedance_core.storage import ArtifactRef, ArtifactStore
from codedance_core.train.distributed import DistContext
from codedance_core.train.grpo_step import Policy, ScoredBatch, update_policy
from codedance_core.train.model_setup import prepare_for_training
from codedance_core.train.sft import train_sft
from codedance_core.train.sharded import Optimization, load_sharded
from tests.codedance_core.train.test_grpo import answering_model_dir, direct_rows  # noqa: F401  (a fixture)
from tests.conftest import free_port

ATOL = 1e-4
LANGUAGE = "model.language_model.layers.0.self_attn.q_proj.weight"
VISION = "model.visual.blocks.0.attn.qkv.weight"



def parameters(model_dir: Path) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in load_model_bundle(model_dir, device="cpu").model.named_parameters()}


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], start: dict) -> None:
    assert actual.keys() == expected.keys()
    moved = max(float((expected[name] - start[name]).abs().max()) for name in expected)
    assert moved > 100 * ATOL, "training barely moved the weights: the comparison would prove nothing"
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=0, atol=ATOL)


# -- under Ray Train ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """No RAY_ADDRESS: the launch starts a local Ray, stopped after this module."""
    import ray

    saved = os.environ.pop("RAY_ADDRESS", None)
    yield
    ray.shutdown()
    if saved is not None:
        os.environ["RAY_ADDRESS"] = saved


def stored_parquet(store: ArtifactStore, relpath: str, rows: list[dict], schema: pa.Schema) -> ArtifactRef:
    with store.stage(relpath) as staged:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), staged.path)
    assert staged.ref is not None
    return staged.ref


def run_stage(plan, call: TrainingCall, store: ArtifactStore):
    return launch(plan, call, store, CallId(plan.stage, uuid.uuid4().hex, "test"), print)


def test_zero3_sft_on_two_ray_train_workers_matches_one_process(local_ray, tiny_model_dir, sft_rows, tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    data = stored_parquet(store, "data/sft.parquet", sft_rows, SFT_ARROW_SCHEMA)
    common = {"batch_size": 2, "max_steps": 3, "learning_rate": 5e-3, "warmup_ratio": 0.0, "seed": 3,
              "checkpoint_every": 2}
    sharded = SFTConfig(num_workers=2, deepspeed_stage=3, grad_accumulation=1, **common)
    plan = sft_plan(sharded)
    assert plan.kind == "ray-train"
    call = TrainingCall(sharded, data, store.write_directory("models/tiny", tiny_model_dir), store.root,
                        "models/sft-zero3", None)
    trained = run_stage(plan, call, store)
    # One process takes both workers' batches of a step as two accumulated micro-batches.
    single = train_sft(SFTConfig(grad_accumulation=2, **common), data.uri, tiny_model_dir,
                       tmp_path / "one", progress=False)

    logged = [json.loads(line) for line in store.read_bytes(trained.metrics.uri).decode().splitlines()]
    losses = [row["loss"] for row in logged]
    assert trained.steps == 3 and losses[-1] < losses[0]
    assert losses == pytest.approx([row["loss"] for row in single.history], abs=1e-5)
    grad_norms = [row["grad_norm"] for row in logged]
    assert grad_norms == pytest.approx([row["grad_norm"] for row in single.history], rel=1e-4)
    start, result = parameters(tiny_model_dir), parameters(store.local_directory(trained.model, tmp_path / "cache"))
    assert_same_weights(result, parameters(single.model_dir), start)
    assert torch.equal(result[VISION], start[VISION])  # the vision tower stays frozen


def test_zero3_grpo_on_two_ray_train_workers_trains_with_an_engine_that_follows(
    local_ray, answering_model_dir, tmp_path  # noqa: F811
):
    store = ArtifactStore(str(tmp_path / "store"))
    data = stored_parquet(store, "data/rl.parquet", direct_rows(6), RL_ARROW_SCHEMA)
    config = GRPOConfig(num_workers=2, deepspeed_stage=3, prompts_per_step=2, samples_per_prompt=4, max_steps=2,
                        learning_rate=2e-3, rollout=RolloutOverrides(max_turns=2), micro_batch_size=4, seed=1)
    sections = RLSections(RolloutSettings(max_new_tokens=20), RewardConfig(), SandboxConfig(workers=1),
                           EngineConfig(model=str(answering_model_dir)))
    call = TrainingCall(config, data, store.write_directory("models/answering", answering_model_dir), store.root,
                        "models/rl-zero3", None, rl=sections)
    trained = run_stage(rl_plan(config, sections.engine), call, store)

    logged = [json.loads(line) for line in store.read_bytes(trained.metrics.uri).decode().splitlines()]
    assert trained.steps == 2 and [row["step"] for row in logged] == [1, 2]
    assert any(row["grad_norm"] > 0 for row in logged), "no step had a learning signal"
    # The engine samples from its own copy, loaded with the gathered weights after each update:
    # the trainer scores the sampled tokens as the engine did, also after the first update.
    assert all(row["rollout_logprob_abs_diff"] < 1e-4 for row in logged), logged
    start, result = parameters(answering_model_dir), parameters(store.local_directory(trained.model, tmp_path / "cache"))
    assert not torch.equal(result[LANGUAGE], start[LANGUAGE])
    assert torch.equal(result[VISION], start[VISION])


# -- a GRPO update split over two ZeRO-3 ranks ----------------------------------------------------
def scored_batch(bundle, count: int = 8) -> ScoredBatch:
    """Trajectories with an image: a prompt, then model turns and tool observations of varied length."""
    rng = np.random.default_rng(0)
    trajectories = []
    for index in range(count):
        image = Image.new("RGB", (56, 56), (40 * index % 255, 90, 160))
        messages = to_model_messages([{"role": "user", "content": f"<image>\nHow many dots? ({index})"}])
        trajectory = Trajectory(item=RolloutItem(f"item-{index}", messages, [image]), sample_index=index)
        trajectory.images = [image]
        trajectory.extend(bundle.encode_messages(messages, [image]).token_ids, trained=False)
        for _ in range(1 + index % 2):
            answer = rng.integers(10, 1000, size=int(rng.integers(4, 16))).tolist()
            trajectory.extend(answer, trained=True, logprobs=rng.uniform(-3, -0.1, len(answer)).tolist())
            trajectory.extend(rng.integers(10, 1000, size=5).tolist(), trained=False)
        trajectories.append(trajectory)
    advantages = [rng.normal(size=len(t.token_ids)) * np.asarray(t.loss_mask) for t in trajectories]
    keep = np.ones(count, dtype=bool)
    return ScoredBatch(trajectories, [i // 4 for i in range(count)], [], BatchRewards(np.zeros(count), keep.copy()),
                       advantages, keep)


def update_config(**overrides) -> GRPOConfig:
    return GRPOConfig(micro_batch_size=2, learning_rate=2e-2, logprob_chunk_tokens=16, **overrides)


def updated_model(model_dir: str, config: GRPOConfig, dist: DistContext, rows: slice, out: Path) -> None:
    """One GRPO update on `rows` of the batch (this rank's share): the full model and the update's
    metrics written to `out`."""
    bundle = load_sharded(config, dist, lambda: load_model_bundle(model_dir, device="cpu", dtype="float32"))
    bundle.model = prepare_for_training(bundle.model, config)
    optimization = Optimization.build(bundle.model, config, dist, lambda _: 1.0)
    policy = Policy(optimization.model, bundle, optimization, config, dist, temperature=0.8)
    whole = scored_batch(bundle)
    share = ScoredBatch(whole.trajectories[rows], whole.group_ids[rows], [], whole.rewards, whole.advantages[rows],
                        whole.keep[rows])
    metrics = update_policy(policy, share)
    optimization.save_model(bundle, out)
    if dist.is_main:
        (out / "metrics.json").write_text(json.dumps(metrics))


def _zero3_rank(rank: int, port: int, model_dir: str, out: str) -> None:
    os.environ.update(DS_ACCELERATOR="cpu", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=120))
    dist = DistContext.current(use_gpu=False)
    updated_model(model_dir, update_config(deepspeed_stage=3), dist, slice(4 * rank, 4 * rank + 4), Path(out))
    dist.barrier()  # neither rank leaves while the other still talks to it
    torch.distributed.destroy_process_group()
    # Its results are on disk: leave without C++ teardown, where a communication thread still
    # joinable at exit aborted the rank now and then ("terminate called without an active exception").
    os._exit(0)


def test_a_grpo_update_split_over_two_zero3_ranks_equals_one_process(tiny_model_dir, tmp_path):
    torch.multiprocessing.spawn(_zero3_rank, args=(free_port(), str(tiny_model_dir), str(tmp_path / "zero3")), nprocs=2)
    updated_model(str(tiny_model_dir), update_config(), DistContext(), slice(0, 8), tmp_path / "one")
    start = parameters(tiny_model_dir)
    sharded = parameters(tmp_path / "zero3")
    assert_same_weights(sharded, parameters(tmp_path / "one"), start)
    # AdamW's first step hardly depends on the gradient's scale: the norm (summed over ranks) does
    zero3, one = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("zero3", "one"))
    assert zero3["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4) and one["grad_norm"] > 0
    assert torch.equal(sharded[VISION], start[VISION])


# -- ZeRO-2 and optimizer offload, one process ----------------------------------------------------
VARIANTS_SCRIPT = """
import json, sys
import torch
torch.set_num_threads(1)
from codedance_core.config.train import SFTConfig
from codedance_core.train.sft import train_sft
data, model, out = sys.argv[1:4]
for stage, offload in [(0, False), (2, False), (2, True), (3, True)]:
    config = SFTConfig(max_steps=2, batch_size=2, grad_accumulation=2, learning_rate=1e-2, warmup_ratio=0.0, seed=3,
                       deepspeed_stage=stage, offload_optimizer=offload, gradient_checkpointing=stage == 3)
    train_sft(config, data, model, f"{out}/stage{stage}-offload{int(offload)}", progress=False)
"""


def test_zero2_and_an_offloaded_optimizer_train_as_plain_pytorch_does(tiny_model_dir, sft_rows, tmp_path):
    """In one process (a DeepSpeed group of one, in a subprocess so that it stays out of pytest's);
    the ZeRO-3 run also recomputes activations (gradient checkpointing), as the paper profile does."""
    data = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist(sft_rows, schema=SFT_ARROW_SCHEMA), data)
    script = tmp_path / "variants.py"
    script.write_text(VARIANTS_SCRIPT)
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), str(data), str(tiny_model_dir), str(tmp_path)],
                          check=False, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-5000:]
    plain = parameters(tmp_path / "stage0-offload0" / "model")
    start = parameters(tiny_model_dir)
    for variant in ("stage2-offload0", "stage2-offload1", "stage3-offload1"):
        assert_same_weights(parameters(tmp_path / variant / "model"), plain, start)


# -- SIGKILL and resume, two ZeRO-3 processes under torchrun -----------------------------------------
SFT_SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads(1)
torch.distributed.init_process_group("gloo")  # as Ray Train does for its workers
from codedance_core.config.train import SFTConfig
from codedance_core.train.sft import train_sft
data, model, run, pause = sys.argv[1:5]
config = SFTConfig(max_steps=5, batch_size=2, checkpoint_every=2, learning_rate=5e-3, warmup_ratio=0.2,
                   keep_checkpoints=2, seed=3, deepspeed_stage=3)
result = train_sft(config, data, model, run, metrics_callback=lambda m, s: time.sleep(float(pause)), progress=False)
if torch.distributed.get_rank() == 0:
    print(json.dumps({"steps": result.steps, "resumed_from": result.resumed_from}))
"""

GRPO_SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads(1)
torch.distributed.init_process_group("gloo")
from codedance_core.config.agent import RolloutSettings
from codedance_core.config.data import SuiteSpec
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.data.suite import make_row
from codedance_core.train.grpo import train_grpo
model, run, pause = sys.argv[1:4]
spec = SuiteSpec(n=24, families=["direct"], difficulty="easy")
rows = [r for r in (make_row(spec, i) for i in range(24)) if len(r["reward_model"]["ground_truth"]) > 1][:6]
config = GRPOConfig(prompts_per_step=2, samples_per_prompt=4, max_steps=4, learning_rate=2e-3,
                    rollout={"max_turns": 2}, checkpoint_every=2, micro_batch_size=3, seed=7, deepspeed_stage=3)
result = train_grpo(config, rows, model, run, rollout=RolloutSettings(max_new_tokens=20),
                    sandbox=SandboxConfig(workers=1), metrics_callback=lambda m, s: time.sleep(float(pause)),
                    progress=False)
if torch.distributed.get_rank() == 0:
    print(json.dumps({"steps": result.steps, "resumed_from": result.resumed_from}))
"""


def _torchrun(script: Path, *args: object) -> subprocess.Popen:
    """Two ranks in a session of their own, so the test can SIGKILL the launcher and both ranks."""
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(free_port()), str(script), *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def kill_after_checkpoint(victim: subprocess.Popen, run: Path, step: int) -> None:
    deadline = time.monotonic() + 180
    while not (run / "checkpoints" / f"step-{step:08d}" / "checkpoint.json").exists():
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (run / "model").exists(), "the run finished before it was killed"


def finished(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-5000:]
    return json.loads(out.strip().splitlines()[-1])


def assert_identical_models(expected_dir: Path, actual_dir: Path) -> None:
    expected = load_file(expected_dir / "model.safetensors")
    actual = load_file(actual_dir / "model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


@pytest.mark.slow  # about 35 s on 2 cores: three two-rank runs; the plain SFT kill test is in the quick suite
def test_a_killed_zero3_sft_run_resumes_to_the_same_parameters(tiny_model_dir, sft_rows, tmp_path):
    data = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist(sft_rows, schema=SFT_ARROW_SCHEMA), data)
    script = tmp_path / "run_sft.py"
    script.write_text(SFT_SCRIPT)
    reference = _torchrun(script, data, tiny_model_dir, tmp_path / "uninterrupted", 0)
    killed = tmp_path / "killed"
    kill_after_checkpoint(_torchrun(script, data, tiny_model_dir, killed, 0.5), killed, 2)

    summary = finished(_torchrun(script, data, tiny_model_dir, killed, 0))
    assert summary["steps"] == 5 and summary["resumed_from"] in ("step-00000002", "step-00000004")
    finished(reference)
    assert_identical_models(tmp_path / "uninterrupted" / "model", killed / "model")


@pytest.mark.slow  # about 50 s on 2 cores: three two-rank runs, each rolling out with a sandbox pool
def test_a_killed_zero3_grpo_run_resumes_to_the_same_parameters(answering_model_dir, tmp_path):  # noqa: F811
    script = tmp_path / "run_grpo.py"
    script.write_text(GRPO_SCRIPT)
    finished(_torchrun(script, answering_model_dir, tmp_path / "uninterrupted", 0))
    killed = tmp_path / "killed"
    kill_after_checkpoint(_torchrun(script, answering_model_dir, killed, 1.0), killed, 2)

    summary = finished(_torchrun(script, answering_model_dir, killed, 0))
    assert summary["steps"] == 4 and summary["resumed_from"] == "step-00000002"
    # resumed rollouts sample from the engine's copy: exact only if it got the restored weights
    assert_identical_models(tmp_path / "uninterrupted" / "model", killed / "model")
    start = load_file(answering_model_dir / "model.safetensors")
    trained = load_file(killed / "model" / "model.safetensors")
    assert any(not torch.equal(start[name], trained[name]) for name in start), "training changed nothing"
