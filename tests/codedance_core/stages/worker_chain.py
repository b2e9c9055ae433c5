"""Every stage's worker entry point, run in an interpreter that cannot import the orchestrator.

Run as a script by test_worker_imports.py: `python worker_chain.py STORE_DIR`. Before anything else
it makes `import prefect` (and the orchestration packages `flows` and `tasks`) fail, as on a GPU
worker whose image has no Prefect; then it runs each entry point the lifecycle's plans name, in
order, on a tiny pipeline of its own (the calls a stage would ship to Ray), and prints the entry
points it ran as JSON.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
from pathlib import Path

BLOCKED = ("prefect", "flows", "tasks")


class BlockOrchestrator(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on a worker")


sys.meta_path.insert(0, BlockOrchestrator())


def main(store_root: str) -> None:
    from codedance_core.config import load_profile
    from codedance_core.data.sources import SourceFiles
    from codedance_core.stages.data import TEXT_ONLY_PLAN, DataCall
    from codedance_core.stages.evaluation import EvalCall
    from codedance_core.stages.filtering import FilterCall, WeakModelCall
    from codedance_core.stages.launch import run_entry
    from codedance_core.stages.models import BaseModelCall, base_model_plan
    from codedance_core.stages.plan import lifecycle_plan
    from codedance_core.stages.sources import SOURCES_PLAN, MergeCall
    from codedance_core.stages.synthesis import SynthesisCall
    from codedance_core.stages.training import RLSections, TrainingCall

    profile = load_profile("tiny", [
        "data.train_size=10", "data.test_size=4", "tiny_model.vocab_size=1200", "tiny_model.corpus_rows=20",
        "filter.k=1", "filter.rollout.max_new_tokens=8", "filter.weak_train_steps=2", "sft.max_steps=1",
        "grpo.max_steps=1", "grpo.prompts_per_step=2", "grpo.samples_per_prompt=2", "grpo.rollout.max_turns=1",
        "rollout.max_new_tokens=16", "evaluation.limit=2", "evaluation.write_viewer=false",
    ])
    ran: list[str] = []

    def run(plan, call):
        ran.append(plan.entry_point)
        return run_entry(plan.entry_point, call)

    plans = dict(lifecycle_plan(profile))
    base = run(plans["base model"], BaseModelCall(profile.model, profile.tiny_model, store_root, "models/base"))
    train = run(plans["suite: train"], DataCall(profile.data, store_root, "data/train.parquet", split="train"))
    test = run(plans["suite: test"], DataCall(profile.data, store_root, "data/test.parquet", split="test"))
    run(plans["validate train"], DataCall(profile.data, store_root, "quarantine/train.parquet", rows=train))
    run(SOURCES_PLAN, MergeCall([SourceFiles.of_artifact("suite://train", train)], "rl", store_root,
                                "data/sources/rl.parquet", 64, 64))
    weak = run(plans["weak model"], WeakModelCall(train, 2, 0, store_root, "models/weak"))
    run(plans["weak-to-strong filter"], FilterCall(
        profile.filter, profile.rollout_for("filter"), profile.rewards, profile.sandbox, profile.engine, train, weak,
        store_root, "data/filtered"))
    synthesized = run(plans["synthesize trajectories"],
                      SynthesisCall(profile.synthesis_config(), train, store_root, "data/sft", None))
    run(TEXT_ONLY_PLAN, DataCall(None, store_root, "data/text.parquet", rows=synthesized.rows))
    sft = run(plans["SFT"], TrainingCall(profile.sft, synthesized.rows, base, store_root, "models/sft", None))
    rl = run(plans["RL round 1"], TrainingCall(
        profile.grpo, train, sft.model, store_root, "models/rl", None,
        rl=RLSections(profile.rollout_for("rl"), profile.rewards, profile.sandbox, profile.engine)))
    run(plans["evaluate RL 1"], EvalCall(
        profile.evaluation, profile.rollout_for("evaluation"), profile.rewards, profile.sandbox, profile.engine,
        profile.pixel_bounds(), rl.model, test, store_root, "eval/rl"))
    checkpoint = profile.model.model_copy(update={"path": str(Path(store_root) / "models" / "base")})
    run(base_model_plan(None), BaseModelCall(checkpoint, None, store_root, "models/registered"))
    leaked = sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED)
    print(json.dumps({"ran": ran, "orchestrator_modules": leaked}))


if __name__ == "__main__":
    main(sys.argv[1])
