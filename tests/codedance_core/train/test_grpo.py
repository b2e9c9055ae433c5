"""GRPO end to end on the tiny model with the real sandbox: it updates, logs, checkpoints, resumes.

A random tiny model never writes a well-formed answer, so every reward would be equal and every
advantage 0. The fixture first imprints a few `direct`-family answers (the answer is in the
question) on it: sampled at temperature 1 it then answers right some of the time, and GRPO has a
signal to follow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from codedance_core.agent.items import item_from_rl_row
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.config.agent import RolloutOverrides, RolloutSettings
from codedance_core.config.data import SuiteSpec
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.data.suite import make_row
from codedance_core.models import load_model_bundle
from codedance_core.models.images import pixel_bounds
from codedance_core.models.imprint import imprint_conversation
from codedance_core.train.grpo import train_grpo

ANSWER = "<think>The question says it.</think><answer>{gold}</answer>"


def direct_rows(n: int, seed: int = 0) -> list[dict]:
    """`direct` items a rule can score (choice items need the judge: their rows carry no options)."""
    spec = SuiteSpec(n=4 * n, families=["direct"], difficulty="easy", seed=seed)
    rows = (make_row(spec, i) for i in range(4 * n))
    return [row for row in rows if len(row["reward_model"]["ground_truth"]) > 1][:n]


@pytest.fixture(scope="module")
def answering_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model imprinted with the answer format on a few direct items (about 5 s)."""
    bundle = load_model_bundle(tiny_model_dir, device="cpu")
    low, high = pixel_bounds(bundle.image_processor)
    # Lightly: the policy must still sample different answers, or every group's rewards are equal.
    for index, row in enumerate(direct_rows(2)):
        item = item_from_rl_row(row, index, low, high)
        turns = [(ANSWER.format(gold=item.gold), None)]
        imprint_conversation(bundle, to_model_messages(item.messages), item.images, turns, steps=4, lr=1e-2)
    out = tmp_path_factory.mktemp("answering_model")
    bundle.model.save_pretrained(out)
    bundle.tokenizer.save_pretrained(out)
    bundle.image_processor.save_pretrained(out)
    return out


def small_config(**overrides) -> GRPOConfig:
    values = {
        "prompts_per_step": 2, "samples_per_prompt": 4, "max_steps": 3, "learning_rate": 2e-3,
        "rollout": RolloutOverrides(max_turns=2),
        "checkpoint_every": 2, "trajectories_every": 2, "micro_batch_size": 4, "seed": 1,
    }
    return GRPOConfig(**{**values, **overrides})


ROLLOUT = RolloutSettings(max_new_tokens=20)
SANDBOX = SandboxConfig(workers=1)


def test_a_few_steps_change_the_policy_and_log_every_metric(answering_model_dir, tmp_path):
    seen: list[tuple[int, dict]] = []
    result = train_grpo(
        small_config(), direct_rows(6), answering_model_dir, tmp_path, rollout=ROLLOUT, sandbox=SANDBOX,
        metrics_callback=lambda m, s: seen.append((s, m)), progress=False,
    )
    assert result.steps == 3 and [step for step, _ in seen] == [1, 2, 3]
    for _, metrics in seen:
        for key in ("reward_mean", "accuracy", "format_penalty", "r_tool", "tool_calls_per_trajectory",
                    "exec_success_rate", "d_mu_mean", "d_mu_min", "d_mu_max", "response_tokens", "clip_frac",
                    "entropy", "kl_ref", "loss", "grad_norm", "rollout_s", "scoring_s", "update_s",
                    "tool_rate/suite_direct"):
            assert key in metrics and metrics[key] == metrics[key], key  # present and not NaN
        assert metrics["trajectories"] == 8 and metrics["rollout_s"] > 0 and metrics["update_s"] > 0
    assert any(m["reward_std"] > 0 and m["grad_norm"] > 0 for _, m in seen), "no step had a learning signal"
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == [1, 2, 3]
    [sample_file] = (tmp_path / "trajectories").glob("step-*.json")
    samples = json.loads(sample_file.read_text())
    assert samples and {"messages", "reward", "d_mu", "tool_statuses"} <= samples[0].keys()
    # grpo.rollout's turn budget is the loop's: at most 2 assistant turns per trajectory
    assert all(sum(m["role"] == "assistant" for m in s["messages"]) <= 2 for s in samples)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-00000002", "step-00000003"]
    trained = dict(load_model_bundle(result.model_dir, device="cpu").model.named_parameters())
    start = dict(load_model_bundle(answering_model_dir, device="cpu").model.named_parameters())
    language = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(trained[language], start[language])
    assert torch.equal(trained["model.visual.blocks.0.attn.qkv.weight"], start["model.visual.blocks.0.attn.qkv.weight"])


def test_equal_reward_groups_can_be_filtered_out(answering_model_dir, tmp_path):
    seen: list[dict] = []
    train_grpo(
        small_config(max_steps=2, filter_equal_reward_groups=True, learning_rate=1e-6), direct_rows(4),
        answering_model_dir, tmp_path, rollout=ROLLOUT, sandbox=SANDBOX,
        metrics_callback=lambda m, s: seen.append(m), progress=False,
    )
    for metrics in seen:
        # a filtered group keeps none of its trajectories
        assert metrics["kept_fraction"] <= 1 - metrics["groups_filtered"] / 2 + 1e-9


def test_dynamic_sampling_trains_on_informative_groups_only(answering_model_dir, tmp_path):
    seen: list[dict] = []
    train_grpo(
        small_config(max_steps=2, dynamic_sampling=True, max_sampling_rounds=3), direct_rows(8),
        answering_model_dir, tmp_path, rollout=ROLLOUT, sandbox=SANDBOX,
        metrics_callback=lambda m, s: seen.append(m), progress=False,
    )
    consumed = 0.0
    for metrics in seen:
        rounds, trained = metrics["sampling/rounds"], metrics["sampling/groups_trained"]
        assert 1 <= rounds <= 3 and metrics["sampling/prompts_consumed"] == 2 * rounds
        assert metrics["sampling/groups_drawn"] == 2 * rounds
        assert metrics["sampling/cap_hit"] == float(trained < 2) and (trained == 2 or rounds == 3)
        consumed += metrics["sampling/prompts_consumed"]
        assert metrics["sampling/prompts_total"] == consumed
        if trained:  # the step's batch is its informative groups: nothing in it is filtered
            assert metrics["trajectories"] == 4 * trained and metrics["groups_filtered"] == 0
        else:  # one uninformative group, kept out of the loss
            assert metrics["trajectories"] == 4 and metrics["kept_fraction"] == 0
    assert any(m["sampling/groups_trained"] > 0 and m["grad_norm"] > 0 for m in seen)


def test_heldout_accuracy_is_logged_before_training_and_every_n_steps(answering_model_dir, tmp_path):
    seen: list[tuple[int, dict]] = []
    held_out = direct_rows(9)[6:]
    train_grpo(
        small_config(eval_every_steps=2, eval_items=2), direct_rows(6), answering_model_dir, tmp_path,
        rollout=ROLLOUT, sandbox=SANDBOX, metrics_callback=lambda m, s: seen.append((s, m)), progress=False,
        eval_data=held_out,
    )
    evaluated = [step for step, metrics in seen if "heldout/accuracy" in metrics]
    assert evaluated == [0, 2]  # the initial policy, then step 2 of 3; not 1 or 3
    heldout = dict(seen)[2]
    assert heldout["heldout/items"] == 2 and 0 <= heldout["heldout/accuracy"] <= 1
    assert 0 <= heldout["heldout/tool_call_rate"] <= 1 and heldout["heldout_s"] > 0
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged if "heldout/accuracy" in row] == [0, 2]
    assert "reward_mean" not in logged[0]  # step 0 is the evaluation alone: nothing was trained


def test_a_resumed_run_draws_the_same_prompts_and_reaches_the_same_parameters(answering_model_dir, tmp_path):
    def run(run_dir: Path, steps: int) -> None:
        train_grpo(
            small_config(max_steps=steps, dynamic_sampling=True, max_sampling_rounds=3, micro_batch_size=8),
            direct_rows(8), answering_model_dir, run_dir,
            rollout=ROLLOUT, sandbox=SANDBOX, progress=False,
        )

    run(tmp_path / "whole", 4)
    run(tmp_path / "halves", 2)
    run(tmp_path / "halves", 4)  # resumes from the checkpoint of step 2

    def drawn(run_dir: Path) -> list[tuple[float, float]]:
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [(row["sampling/prompts_total"], row["sampling/informative_groups"]) for row in rows]

    assert drawn(tmp_path / "halves") == drawn(tmp_path / "whole")
    assert drawn(tmp_path / "whole")[-1][0] > 8, "no step drew a second batch: the test checks nothing"
    expected = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    actual = load_file(tmp_path / "halves" / "model" / "model.safetensors")
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


RUN_SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads(1)
from codedance_core.config.agent import RolloutSettings
from codedance_core.config.data import SuiteSpec
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.data.suite import make_row
from codedance_core.train.grpo import train_grpo
model, run, pause = sys.argv[1:4]
spec = SuiteSpec(n=24, families=["direct"], difficulty="easy")
rows = [r for r in (make_row(spec, i) for i in range(24)) if len(r["reward_model"]["ground_truth"]) > 1][:6]
config = GRPOConfig(prompts_per_step=2, samples_per_prompt=4, max_steps=5, learning_rate=2e-3,
                    rollout={"max_turns": 2}, checkpoint_every=2, micro_batch_size=3, seed=7)
result = train_grpo(config, rows, model, run, rollout=RolloutSettings(max_new_tokens=20),
                    sandbox=SandboxConfig(workers=2), metrics_callback=lambda m, s: time.sleep(float(pause)),
                    progress=False)
print(json.dumps({"steps": result.steps, "resumed_from": result.resumed_from}))
"""


def _start(script: Path, model: Path, run: Path, pause: float) -> subprocess.Popen:
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), str(model), str(run), str(pause)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


@pytest.mark.slow  # about 70 s on 2 cores: three runs of five steps, each starting a sandbox pool
def test_a_killed_run_resumes_to_the_same_parameters(answering_model_dir, tmp_path):
    script = tmp_path / "run_grpo.py"
    script.write_text(RUN_SCRIPT)
    reference = _start(script, answering_model_dir, tmp_path / "uninterrupted", 0)
    _, ref_err = reference.communicate(timeout=180)
    assert reference.returncode == 0, ref_err
    killed_run = tmp_path / "killed"
    victim = _start(script, answering_model_dir, killed_run, 1.0)
    deadline = time.monotonic() + 180
    while not (killed_run / "checkpoints" / "step-00000002" / "checkpoint.json").exists():
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed_run / "model").exists(), "the run finished before it was killed"

    resumed = _start(script, answering_model_dir, killed_run, 0)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["steps"] == 5 and summary["resumed_from"] in ("step-00000002", "step-00000004")
    expected = load_file(tmp_path / "uninterrupted" / "model" / "model.safetensors")
    actual = load_file(killed_run / "model" / "model.safetensors")
    assert expected.keys() == actual.keys()
    changed = load_file(answering_model_dir / "model.safetensors")
    assert any(not torch.equal(expected[name], changed[name]) for name in expected), "training changed nothing"
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


def test_prompts_must_split_evenly_over_workers():
    with pytest.raises(ValueError, match="multiple of num_workers"):
        GRPOConfig(num_workers=3)
