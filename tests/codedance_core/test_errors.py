"""`describe`: the one line for each error a user causes or meets, and None for a bug."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from codedance_core.errors import UserError, describe, one_line


def raised(action) -> BaseException:
    """The exception `action()` raises (a real one, from the real library)."""
    with pytest.raises(BaseException) as caught:
        action()
    return caught.value


def test_a_user_error_is_its_message_and_hint():
    assert describe(UserError("the file is empty", "write some rows")) == "the file is empty; write some rows"


def test_our_own_value_errors_are_shown_on_one_line():
    from codedance_core.config import ConfigError

    error = ConfigError("invalid config x.yaml:\n  seed: not an int\n  sft.lr: unknown key")
    assert describe(error) == "invalid config x.yaml: seed: not an int; sft.lr: unknown key"


def test_bugs_are_not_described():
    assert describe(KeyError("k")) is None
    assert describe(RuntimeError("odd state")) is None
    assert describe(ValueError("a plain ValueError is a bug until it says otherwise")) is None


def test_s3_credentials_and_endpoints():
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    assert "AWS_ACCESS_KEY_ID" in describe(NoCredentialsError())
    refused = ClientError({"Error": {"Code": "InvalidAccessKeyId", "Message": "no such key"}}, "GetObject")
    assert describe(refused).startswith("S3 refused the GetObject request (InvalidAccessKeyId")
    down = EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k")
    assert "AWS_ENDPOINT_URL" in describe(down)


def test_the_cause_behind_a_wrapper_is_what_is_told():
    from botocore.exceptions import ClientError

    forbidden = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")
    try:
        raise PermissionError("Forbidden") from forbidden  # what s3fs raises
    except PermissionError as wrapped:
        assert describe(wrapped).startswith("S3 refused the HeadObject request (403: Forbidden)")


def test_an_unreachable_server():
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    line = describe(raised(lambda: httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)))
    assert line.startswith(f"cannot connect to http://127.0.0.1:{port}/v1/models")


def test_files_that_are_not_what_they_should_be(tmp_path: Path):
    import polars as pl
    import pyarrow.parquet as pq
    import yaml
    from safetensors import safe_open

    text = tmp_path / "rows.parquet"
    text.write_text("not parquet at all")
    assert describe(raised(lambda: pq.read_table(text))).startswith("not a parquet file")
    assert "expected columns" in describe(raised(lambda: pl.DataFrame({"a": [1]}).select("b")))
    assert describe(raised(lambda: yaml.safe_load("a: [1"))).startswith("not valid YAML")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\xff" * 64)
    assert "truncated or corrupt" in describe(raised(lambda: safe_open(str(weights), framework="np")))
    assert describe(raised((tmp_path / "absent.txt").read_text)).startswith("no such file or directory")


def test_one_line_joins_lines():
    assert one_line("a:\n  b\n\n  c") == "a: b; c"


def test_a_ray_task_error_is_told_by_its_cause_not_its_remote_traceback():
    from ray.exceptions import RayTaskError

    wrapped = RayTaskError(
        "sft_worker", "Traceback (most recent call last): ...", UserError("bad rows", "fix them")
    )
    assert describe(wrapped.as_instanceof_cause()) == "bad rows; fix them"
    assert describe(RayTaskError("sft_worker", "...", KeyError("k")).as_instanceof_cause()) is None
