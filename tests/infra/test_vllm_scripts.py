"""The vLLM serve scripts: bash syntax, shellcheck, and the command each one builds (run for
real with PRINT_ONLY=1, which prints the `vllm serve` command instead of starting it)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import pytest

from codedance_core.config import load_profile
from tests.infra.infra_files import INFRA

SCRIPTS = sorted((INFRA / "vllm").glob("*.sh"))


def built_command(script: str, **env: str) -> dict[str, str]:
    """The `vllm serve MODEL --flag value ...` the script would exec, as {'model': ..., '--flag': value}."""
    result = subprocess.run(
        ["bash", str(INFRA / "vllm" / script), "--enable-prefix-caching"],
        env={"PATH": os.environ["PATH"], "PRINT_ONLY": "1", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    words = shlex.split(result.stdout)
    assert words[:2] == ["vllm", "serve"]
    assert words[-1] == "--enable-prefix-caching"  # extra arguments pass through
    return {"model": words[2], **dict(zip(words[3:-1:2], words[4:-1:2], strict=True))}


def test_there_is_a_judge_and_a_policy_script() -> None:
    assert [script.name for script in SCRIPTS] == ["serve_judge.sh", "serve_policy.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_are_strict_and_parse(script) -> None:
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script.read_text()
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_pass_shellcheck(script) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck is required under CI (apt-get install shellcheck)")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, "--severity=style", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_the_judge_is_qwen_72b_on_8_gpus_at_18901_named_judge() -> None:
    command = built_command("serve_judge.sh")
    assert command["model"].endswith("Qwen2.5-72B-Instruct")
    assert command["--served-model-name"] == "judge"
    assert command["--port"] == "18901"
    assert command["--tensor-parallel-size"] == "8"


def test_the_judge_settings_follow_the_environment() -> None:
    command = built_command("serve_judge.sh", JUDGE_PORT="19000", JUDGE_TENSOR_PARALLEL_SIZE="4")
    assert (command["--port"], command["--tensor-parallel-size"]) == ("19000", "4")


def test_the_policy_serves_the_given_checkpoint_at_18902_with_the_paper_context() -> None:
    command = built_command("serve_policy.sh", POLICY_MODEL="/checkpoints/rl/step-200")
    assert command["model"] == "/checkpoints/rl/step-200"
    assert command["--served-model-name"] == "policy"
    assert command["--port"] == "18902"
    assert int(command["--max-model-len"]) == load_profile("paper").engine.max_model_len


def test_the_policy_script_refuses_to_start_without_a_checkpoint() -> None:
    result = subprocess.run(
        ["bash", str(INFRA / "vllm" / "serve_policy.sh")],
        env={"PATH": os.environ["PATH"], "PRINT_ONLY": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "POLICY_MODEL" in result.stderr
