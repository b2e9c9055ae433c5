"""A GRPO step's loop config (RL's effective settings, the group size, the step's seed, the lockstep
wait), and the engine-vs-trainer log-prob gap every step reports."""

from __future__ import annotations

import numpy as np
import pytest

from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.config.agent import RolloutSettings
from codedance_core.config.loader import load_profile
from codedance_core.config.train import GRPOConfig
from codedance_core.train.distributed import DistContext
from codedance_core.train.grpo import train_grpo
from codedance_core.train.grpo_rollout import step_rollout_config
from codedance_core.train.grpo_step import Policy, _old_logprobs, policy_logprobs


def test_a_step_adds_only_its_seed_group_size_and_lockstep_to_rls_settings() -> None:
    profile = load_profile("tiny", ["rollout.observation_max_chars=1000", "grpo.rollout.temperature=0.7"])
    settings = profile.rollout_for("rl")
    config = step_rollout_config(settings, samples_per_prompt=4, seed=12, lockstep=False)
    assert config.model_dump(exclude={"samples_per_prompt", "seed", "lockstep"}) == settings.model_dump()
    assert (config.max_turns, config.temperature, config.observation_max_chars) == (3, 0.7, 1000)
    assert (config.samples_per_prompt, config.seed) == (4, 12)
    assert not config.lockstep
    assert step_rollout_config(settings, 4, 12, lockstep=True).lockstep


def test_training_refuses_greedy_rollouts(tmp_path) -> None:
    with pytest.raises(ValueError, match="temperature must be above 0"):
        train_grpo(GRPOConfig(), [], tmp_path / "model", tmp_path / "run", rollout=RolloutSettings(temperature=0))


def sampled_trajectories(bundle, count: int) -> list[Trajectory]:
    """Trajectories of a prompt and five "sampled" tokens each (engine log-probs filled in later)."""
    messages = [{"role": "user", "content": "How many dots?"}]
    prompt = bundle.encode_messages(messages, [])
    trajectories = []
    for index in range(count):
        trajectory = Trajectory(item=RolloutItem(item_id="q", messages=messages, images=[]), sample_index=index)
        trajectory.extend(list(prompt.token_ids), trained=False)
        trajectory.extend([100 + 7 * index + k for k in range(5)], trained=True)
        trajectories.append(trajectory)
    return trajectories


@pytest.mark.parametrize("old_logprobs", ["recompute", "rollout"])
def test_the_engine_trainer_log_prob_gap_is_measured_whichever_denominator_is_used(tiny_bundle, old_logprobs):
    config = GRPOConfig(micro_batch_size=2, old_logprobs=old_logprobs)
    policy = Policy(tiny_bundle.model, tiny_bundle, None, config, DistContext(), temperature=1.0)
    trajectories = sampled_trajectories(tiny_bundle, 5)
    trainer = policy_logprobs(tiny_bundle.model, trajectories, policy)
    for trajectory, scored in zip(trajectories, trainer, strict=True):
        mask = np.asarray(trajectory.loss_mask, dtype=bool)
        trajectory.logprobs = list(np.where(mask, scored - 0.25, 0.0))  # an engine 0.25 nats off
    old, gap = _old_logprobs(policy, trajectories)
    assert gap == pytest.approx(0.25, abs=1e-5)
    expected = trainer if old_logprobs == "recompute" else [np.asarray(t.logprobs) for t in trajectories]
    for denominator, wanted in zip(old, expected, strict=True):
        np.testing.assert_allclose(denominator, wanted, atol=1e-6)


def rl_rows_with_two_bad_ones() -> list[dict]:
    from codedance_core.config.data import SuiteSpec
    from codedance_core.data.suite import make_row

    spec = SuiteSpec(n=4, families=["direct"], difficulty="easy", seed=0)
    good = [make_row(spec, i) for i in range(3)]
    corrupt = {**good[0], "images": [{"bytes": b"\x89PNG\r\n\x1a\nbroken", "path": None}]}
    wrong = {"question": "How many?", "answer": "3"}  # an eval row, not an RL row
    return [good[0], corrupt, good[1], wrong, good[2]]


def test_bad_prompt_rows_are_quarantined_before_training_with_their_reasons(tmp_path) -> None:
    import pyarrow.parquet as pq

    from codedance_core.train.grpo_rollout import load_prompt_rows

    rows, stats = load_prompt_rows(rl_rows_with_two_bad_ones(), tmp_path)
    assert len(rows) == 3 and stats["rows"] == 5 and stats["quarantined_rows"] == 2
    assert stats["quarantine_reasons"] == {"image_undecodable": 1, "missing_field": 1}
    quarantined = pq.read_table(stats["quarantine_file"]).to_pylist()
    assert [row["reason"] for row in quarantined] == ["image_undecodable", "missing_field"]
    assert quarantined[1]["question"] == "How many?"  # the row as it was


def test_prompts_from_a_file_with_no_rl_row_are_an_error(tmp_path) -> None:
    import polars as pl

    from codedance_core.data.quarantine import NoValidRowsError
    from codedance_core.train.grpo_rollout import load_prompt_rows

    path = tmp_path / "eval.parquet"
    pl.DataFrame({"question": ["How many?"], "answer": ["3"]}).write_parquet(path)
    with pytest.raises(NoValidRowsError, match=r"columns found: question, answer; columns expected: data_source, "
                                               r"prompt \(or messages\), images"):
        load_prompt_rows(str(path), tmp_path)
