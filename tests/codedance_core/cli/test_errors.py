"""Every entry point answers a fault the user caused or met with ONE line on stderr and status 2.

Each case runs the real command as a subprocess (the console script, so the top-level handler in
cli/main.py is what is tested) against a real fault: weights files truncated or random, files of
the wrong columns, a moto S3 server that checks keys, a loopback port nobody listens on. `--debug`
(or CODEDANCE_DEBUG=1) brings the traceback back.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import free_port, moto_server

CODEDANCE = str(Path(sys.executable).parent / "codedance")
REPO = Path(__file__).resolve().parents[3]
RL_COLUMNS = ["data_source", "prompt", "images", "ability", "reward_model", "extra_info"]
SFT_COLUMNS = ["messages", "images"]


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run in the repository (so `-m flows.X` imports); AWS settings come only from `env`."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return subprocess.run(
        argv,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**inherited, **(env or {})},
    )


def codedance(
    bad: dict[str, Path], *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`codedance ARGV` with {name} placeholders filled from the `bad` fixture."""
    return run(CODEDANCE, *(arg.format(**{k: str(v) for k, v in bad.items()}) for arg in argv), env=env)


def assert_one_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Status 2, and stderr is exactly one `error:` line (no traceback anywhere); that line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# -- bad inputs, built small ----------------------------------------------------------------------
def write_safetensors(path: Path, payload: bytes = bytes(16)) -> None:
    """A valid one-tensor safetensors file (float32, 4 values)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, len(payload)]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + payload)


def model_dir(root: Path, weights: str) -> Path:
    """A directory that passes for a checkpoint up to its weights: complete, truncated, random or absent."""
    path = root / f"model-{weights}"
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "tokenizer.json").write_text("{}")
    weights_file = path / "model.safetensors"
    if weights in ("complete", "truncated"):
        write_safetensors(weights_file)
    if weights == "truncated":
        weights_file.write_bytes(weights_file.read_bytes()[:-6])
    if weights == "random":
        weights_file.write_bytes(os.urandom(4096))
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    paths = {f"model-{kind}": model_dir(root, kind) for kind in ("complete", "truncated", "random", "absent")}
    paths["model-missing"] = root / "no-such-model"
    for name, columns in (("rl", RL_COLUMNS), ("sft", SFT_COLUMNS), ("wrong", ["question", "label"])):
        paths[name] = root / f"{name}.parquet"
        pq.write_table(pa.table({column: ["x"] * 3 for column in columns}), paths[name])
    paths["broken-yaml"] = root / "broken.yaml"
    paths["broken-yaml"].write_text("seed: [1, 2\nstore: {root: x}\n")
    paths["out"] = root / "out"
    paths["out"].mkdir()
    return paths


# -- a missing or corrupt model, before any load --------------------------------------------------
MODEL_CASES = [
    (
        "rollout",
        "model-truncated",
        ["rollout", "--model", "{model}", "--data", "{rl}", "--out", "{out}/t.parquet"],
    ),
    ("eval", "model-random", ["eval", "--model", "{model}", "--data_path", "{rl}", "--save_path", "{out}"]),
    ("serve", "model-absent", ["serve", "--model", "{model}"]),
    ("train sft", "model-missing", ["train", "sft", "--model", "{model}", "--data", "{sft}"]),
    ("train rl", "model-truncated", ["train", "rl", "--model", "{model}", "--data", "{rl}"]),
    ("model info", "model-random", ["model", "info", "{model}"]),
    (
        "data filter",
        "model-absent",
        ["data", "filter", "--input", "{rl}", "--out", "{out}/f.parquet", "--weak-model", "{model}"],
    ),
]
WHAT_IS_WRONG = {
    "model-truncated": "truncated or corrupt",
    "model-random": "truncated or corrupt",
    "model-absent": "has no weights",
    "model-missing": "no config.json",
}


@pytest.mark.parametrize(("command", "model", "argv"), MODEL_CASES, ids=[case[0] for case in MODEL_CASES])
def test_a_bad_model_directory_is_one_line(bad, command, model, argv):
    line = assert_one_line(codedance({**bad, "model": bad[model]}, *argv), WHAT_IS_WRONG[model])
    if model != "model-missing":
        assert "model.safetensors" in line or str(bad[model]) in line


def test_debug_shows_the_traceback_instead(bad):
    args = ["rollout", "--model", "{model-truncated}", "--data", "{rl}", "--out", "{out}/x.parquet"]
    for result in (codedance(bad, "--debug", *args), codedance(bad, *args, env={"CODEDANCE_DEBUG": "1"})):
        assert result.returncode != 0 and "Traceback" in result.stderr and "ModelDirError" in result.stderr


# -- data of the wrong kind, bad arguments, broken config -----------------------------------------
INPUT_CASES = [
    ("train rl, SFT rows", ["train", "rl", "--model", "{model-complete}", "--data", "{sft}"], "reward_model"),
    ("train sft, RL rows", ["train", "sft", "--model", "{model-complete}", "--data", "{rl}"], "messages"),
    (
        "rollout, wrong columns",
        ["rollout", "--model", "{model-complete}", "--data", "{wrong}", "--out", "{out}/r.parquet"],
        "lacks the column",
    ),
    (
        "rollout --n -1",
        ["rollout", "--model", "{model-complete}", "--data", "{rl}", "--out", "{out}/r.parquet", "--n", "-1"],
        "--n must be at least 1",
    ),
    (
        "rollout, no data file",
        ["rollout", "--model", "{model-complete}", "--data", "{out}/none.parquet", "--out", "x"],
        "no such file",
    ),
    (
        "eval, no data file",
        ["eval", "--model", "{model-complete}", "--data_path", "{out}/none.parquet"],
        "does not exist",
    ),
    ("broken YAML", ["config", "show", "--profile", "{broken-yaml}"], "broken.yaml, line"),
    ("unknown option", ["train", "rl", "--epochs", "3"], "No such option"),
]


@pytest.mark.parametrize(
    ("argv", "expected"), [case[1:] for case in INPUT_CASES], ids=[case[0] for case in INPUT_CASES]
)
def test_bad_data_and_arguments_are_one_line(bad, argv, expected):
    assert_one_line(codedance(bad, *argv), expected)


def test_an_unreachable_model_server_is_one_line(bad):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = codedance(
        bad, "eval", "--api_url", url, "--model_name", "m", "--data_path", "{rl}", "--save_path", "{out}"
    )
    assert_one_line(result, "cannot connect", url)


# -- S3: a wrong key, no credentials, nobody listening --------------------------------------------
@pytest.fixture(scope="module")
def checking_s3() -> str:
    """A moto server that checks access keys (the session's own accepts any key)."""
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as url:
        yield url


def s3_env(endpoint: str, key: str | None = "wrong-key") -> dict[str, str]:
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "eu-west-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if key is not None:
        env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=key)
    return env


S3_CASES = [
    (
        "validate, wrong key",
        ["data", "validate", "s3://bucket-x/rows.parquet", "--quarantine", "{out}/q.parquet"],
        "wrong key",
        "S3 refused",
    ),
    (
        "synth, wrong key",
        ["data", "synth", "--out", "s3://bucket-x/rows.parquet", "--n", "2", "--workers", "1"],
        "wrong key",
        "S3 refused",
    ),
    (
        "train rl, wrong key",
        ["train", "rl", "--data", "s3://bucket-x/rows.parquet", "--model", "{model-complete}"],
        "wrong key",
        "S3 refused",
    ),
    (
        "validate, no credentials",
        ["data", "validate", "s3://bucket-x/rows.parquet", "--quarantine", "{out}/q.parquet"],
        "no key",
        "no usable S3 credentials",
    ),
    (
        "validate, server down",
        ["data", "validate", "s3://bucket-x/rows.parquet", "--quarantine", "{out}/q.parquet"],
        "down",
        "Could not connect to the endpoint",
    ),
    (
        "train rl, server down",
        ["train", "rl", "--data", "s3://bucket-x/rows.parquet", "--model", "{model-complete}"],
        "down",
        "AWS_ENDPOINT_URL",
    ),
]


@pytest.mark.parametrize(
    ("argv", "fault", "expected"), [case[1:] for case in S3_CASES], ids=[c[0] for c in S3_CASES]
)
def test_s3_faults_are_one_line(bad, checking_s3, argv, fault, expected):
    env = {
        "wrong key": s3_env(checking_s3),
        "no key": s3_env(checking_s3, key=None),
        "down": s3_env(f"http://127.0.0.1:{free_port()}", key="any"),
    }[fault]
    assert_one_line(codedance(bad, *argv, env=env), expected)


def test_debug_env_shows_the_s3_traceback(bad, checking_s3):
    env = {**s3_env(checking_s3), "CODEDANCE_DEBUG": "1"}
    result = codedance(
        bad, "data", "validate", "s3://bucket-x/rows.parquet", "--quarantine", "{out}/q.parquet", env=env
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "PermissionError" in result.stderr


# -- what is not a user's fault keeps its traceback -----------------------------------------------
def test_only_known_errors_become_one_line(monkeypatch, capsys):
    from codedance_core.cli.main import CodeDanceApp
    from codedance_core.errors import UserError

    monkeypatch.delenv("CODEDANCE_DEBUG", raising=False)
    app = CodeDanceApp()

    @app.command()
    def fail(kind: str) -> None:
        raise {"bug": KeyError("a bug"), "user": UserError("the input is wrong", "fix it")}[kind]

    with pytest.raises(KeyError):
        app(["bug"], prog_name="fail")
    with pytest.raises(SystemExit) as stopped:
        app(["user"], prog_name="fail")
    assert stopped.value.code == 2 and capsys.readouterr().err == "error: the input is wrong; fix it\n"
    with pytest.raises(SystemExit) as helped:
        app(["--help"], prog_name="fail")
    assert helped.value.code == 0


# -- the flows' entry points ----------------------------------------------------------------------
@pytest.mark.slow
def test_a_flow_entry_point_reports_a_broken_profile_in_one_line(bad, tmp_path):
    env = {"PREFECT_HOME": str(tmp_path / "prefect")}
    assert_one_line(
        run(sys.executable, "-m", "flows.lifecycle", "--profile", str(bad["broken-yaml"]), env=env),
        "not valid YAML",
    )
    assert_one_line(
        run(sys.executable, "-m", "flows.lifecycle", "--rl-rounds", "many", env=env),
        "invalid int value",
        "python -m flows.lifecycle --help",
    )
    debug = run(
        sys.executable, "-m", "flows.lifecycle", "--profile", str(bad["broken-yaml"]), "--debug", env=env
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr
