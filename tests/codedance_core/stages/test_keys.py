"""A stage call's key: inputs' digests, config digests and code; never where results go."""

from __future__ import annotations

import inspect

import pytest

from codedance_core.config import load_profile
from codedance_core.stages import StageContext, Tracking, train_rl, train_sft
from codedance_core.stages.keys import fingerprint, stage, stage_code_version, stage_key
from codedance_core.storage import ArtifactRef

DATA = ArtifactRef(uri="/store/data.parquet", digest="sha256:" + "a" * 64, size=10, rows=3)
MODEL = ArtifactRef(uri="/store/model", digest="sha256:" + "b" * 64, size=10)


def sft_inputs(**changes) -> dict:
    profile = load_profile("tiny", changes.pop("overrides", []))
    return {"config": profile.sft, "data": DATA, "model": MODEL, "ctx": StageContext("/tmp/store"), **changes}


def test_the_key_follows_the_inputs_digests_not_their_uris() -> None:
    moved = DATA.model_copy(update={"uri": "s3://bucket/data.parquet"})
    assert stage_key(train_sft, sft_inputs()) == stage_key(train_sft, sft_inputs(data=moved))
    changed = DATA.model_copy(update={"digest": "sha256:" + "c" * 64})
    assert stage_key(train_sft, sft_inputs()) != stage_key(train_sft, sft_inputs(data=changed))


def test_a_config_change_changes_the_key_of_the_stage_that_reads_it_only() -> None:
    assert stage_key(train_sft, sft_inputs()) != stage_key(train_sft, sft_inputs(overrides=["sft.epochs=9"]))
    # An RL-only change keeps SFT's key: a rerun reuses the SFT policy.
    assert stage_key(train_sft, sft_inputs()) == stage_key(train_sft, sft_inputs(overrides=["grpo.learning_rate=1e-4"]))


def test_where_results_go_is_not_part_of_the_key() -> None:
    elsewhere = StageContext("/elsewhere", Tracking(tracking_uri="sqlite:///x.db", experiment="x"), {"seed": "3"})
    assert stage_key(train_sft, sft_inputs()) == stage_key(train_sft, sft_inputs(ctx=elsewhere))
    assert fingerprint(elsewhere) is None


def test_the_stage_decorator_keeps_the_signature_and_keys_each_call() -> None:
    seen = []

    @stage("probe")
    def probe(value: int, ctx: StageContext) -> str:
        seen.append(ctx.call)
        return ctx.call.name

    assert list(inspect.signature(probe).parameters) == ["value", "ctx"]
    name = probe(1, StageContext("/tmp/store"))
    assert name.startswith("probe-") and seen[0].key == stage_key(probe, {"value": 1, "ctx": None})
    assert probe(2, ctx=StageContext("/tmp/store")) != name
    with pytest.raises(TypeError, match="no `ctx` parameter"):
        stage("bad")(lambda value: value)


def test_stages_in_different_modules_have_different_code_versions() -> None:
    assert stage_code_version(train_sft) == stage_code_version(train_rl)  # one module
    from codedance_core.stages import suite_split

    assert stage_code_version(suite_split) != stage_code_version(train_sft)


def test_a_stage_override_of_the_rollout_changes_that_stage_key_only() -> None:
    from codedance_core.stages import evaluate, filter_rows

    def keys(*overrides: str) -> tuple[str, str]:
        profile = load_profile("tiny", list(overrides))
        ctx = StageContext("/tmp/store")
        shared = {"rewards": profile.rewards, "sandbox": profile.sandbox, "engine": profile.engine, "ctx": ctx}
        filtered = stage_key(filter_rows, {**shared, "config": profile.filter, "rollout": profile.rollout_for("filter"),
                                           "rows": DATA, "weak": MODEL})
        evaluated = stage_key(evaluate, {**shared, "config": profile.evaluation, "pixels": profile.pixel_bounds(),
                                         "rollout": profile.rollout_for("evaluation"), "model": MODEL,
                                         "benchmark": DATA, "label": "sft"})
        return filtered, evaluated

    base = keys()
    assert keys("filter.rollout.max_new_tokens=9")[0] != base[0]
    assert keys("filter.rollout.max_new_tokens=9")[1] == base[1]
    assert keys("evaluation.rollout.max_turns=2") == (base[0], keys("evaluation.rollout.max_turns=2")[1])
    assert keys("evaluation.rollout.max_turns=2")[1] != base[1]


def test_editing_code_a_stage_reaches_changes_its_version_and_other_code_does_not(tmp_path) -> None:
    import shutil

    from codedance_core.stages.code_version import DEFAULT_ROOTS, code_version

    def copy_with(name: str, edited: str | None) -> str:
        """The training stage's code version in a copy of the package, one module edited."""
        copy = tmp_path / name / "codedance_core"
        shutil.copytree(DEFAULT_ROOTS["codedance_core"], copy, ignore=shutil.ignore_patterns("__pycache__"))
        if edited:
            (copy / edited).write_text((copy / edited).read_text() + "\n# edited\n")
        return code_version(["codedance_core.stages.training"], {"codedance_core": copy})

    before = copy_with("same", None)
    assert copy_with("unrelated", "serve/app.py") == before
    assert copy_with("reached", "train/sft_batches.py") != before  # reached through train/sft.py
