"""RAY_ADDRESS parsing: each documented form, and the mistakes it must refuse (no Ray started)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codedance_core.stages.ray_address import RayAddress, connect, parse_ray_address, ray_address_from_env


@pytest.mark.parametrize("text", [None, "", "   "])
def test_nothing_set_means_a_local_ray(text: str | None) -> None:
    assert parse_ray_address(text) == RayAddress("local", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The Ray Client server of a head node (KubeRay's head service, port 10001).
        (
            "ray://codedance-head-svc.codedance.svc:10001",
            RayAddress("client", "ray://codedance-head-svc.codedance.svc:10001"),
        ),
        ("ray://10.0.0.5", RayAddress("client", "ray://10.0.0.5")),
        ("ray://head:10001/", RayAddress("client", "ray://head:10001")),
        # A cluster's GCS, joined as a driver.
        ("127.0.0.1:6379", RayAddress("cluster", "127.0.0.1:6379")),
        ("head-node.internal:6379", RayAddress("cluster", "head-node.internal:6379")),
        ("[::1]:6379", RayAddress("cluster", "[::1]:6379")),
        ("auto", RayAddress("cluster", "auto")),
        # The dashboard, which serves the Jobs API: what infra/README.md documents.
        (
            "http://codedance-head-svc.codedance.svc:8265",
            RayAddress("dashboard", "http://codedance-head-svc.codedance.svc:8265"),
        ),
        ("https://ray.example.org/", RayAddress("dashboard", "https://ray.example.org")),
        ("  http://head:8265  ", RayAddress("dashboard", "http://head:8265")),
    ],
)
def test_each_documented_form_is_recognised(text: str, expected: RayAddress) -> None:
    assert parse_ray_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "head",  # a GCS address needs its port
        "head:",
        "head:http",
        "head:0",
        "head:70000",
        "local",
        "AUTO",
        "tcp://head:6379",
        "anyscale://my-cluster",
        "http://",
        "http://head:notaport",
        "ray://",
        "ray://head:10001/path",
        "head 6379",
        "-head:6379",
    ],
)
def test_anything_else_is_refused_naming_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="ray://HOST") as refused:
        parse_ray_address(text)
    assert repr(text.strip()) in str(refused.value) and "http://HOST" in str(refused.value)


def test_the_environment_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    assert ray_address_from_env() == RayAddress("dashboard", "http://head:8265")
    monkeypatch.delenv("RAY_ADDRESS")
    assert ray_address_from_env().kind == "local"
    monkeypatch.setenv("RAY_ADDRESS", "head")
    with pytest.raises(ValueError, match="HOST:PORT"):
        ray_address_from_env()


def test_parsing_imports_no_ray() -> None:
    # Parsing happens on the orchestrator before anything else: it must stay cheap and pure.
    code = (
        "import sys; from codedance_core.stages.ray_address import parse_ray_address; "
        "parse_ray_address('ray://head:10001'); print('ray' in sys.modules)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


def test_a_dashboard_address_is_refused_by_connect() -> None:
    with pytest.raises(ValueError, match="Jobs API.*run_ray_job"):
        connect(parse_ray_address("http://head:8265"))
