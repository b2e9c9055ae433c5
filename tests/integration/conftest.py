"""The real servers the integration tests run the orchestration against, all on loopback.

- a Ray cluster of two nodes (`ray start --head` plus a second `ray start --address=...`); the head
  node offers no CPU, as on a real cluster, so every Ray task runs on the other node and work
  really crosses nodes;
- a Prefect server (`prefect server start`) with its own PREFECT_HOME;
- an MLflow tracking server on SQLite whose artifacts go to the moto S3 server;
- a bucket on the moto S3 server (the `s3_endpoint` fixture of tests/conftest.py).

Each component runs in its own process session and is stopped by process-group id at the end, so
nothing outlives the tests and no other Ray or server on the machine is touched (`ray stop` would
stop every Ray on the machine). Nothing is mocked; a component that cannot start fails the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, require_executable, wait_for_port

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # Ray's floor is ~75 MB; the default would claim GBs


@dataclass
class Service:
    """A server process started by a fixture, in its own session so it stops with its children."""

    name: str
    process: subprocess.Popen
    log: Path

    def stop(self, grace_s: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever the process started and left behind (Ray workers, uvicorn workers)
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def start_service(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Service:
    log = log_dir / f"{name}.log"
    process = subprocess.Popen(
        argv, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    return Service(name, process, log)


def wait_http(url: str, service: Service, timeout_s: float = 120.0) -> None:
    """Wait until `url` answers 200, failing with the server's log if it dies or never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} exited with {service.process.returncode}:\n{service.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{service.name} did not answer {url} within {timeout_s}s:\n{service.tail()}")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RAY_", "MLFLOW_"))}
    # The cluster's `python ...` job entrypoints must run this venv's interpreter.
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        PATH=os.pathsep.join([venv_bin, env.get("PATH", "")]),
        MLFLOW_DISABLE_TELEMETRY="true",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        DS_ACCELERATOR="cpu",
        PYTHONPATH=str(REPO),
    )
    return env


# -- Ray ------------------------------------------------------------------------------------------
@dataclass
class RayCluster:
    address: str  # GCS address, what RAY_ADDRESS names
    dashboard_url: str  # the state API (ray.util.state) talks to the dashboard
    head_node_id: str
    worker_node_id: str
    services: list[Service] = field(default_factory=list)
    client_address: str = ""  # ray://127.0.0.1:PORT, the head's Ray Client server

    def running_tasks(self, name_prefix: str = "") -> list:
        """Ray tasks in state RUNNING (optionally whose name starts with `name_prefix`)."""
        from ray.util.state import list_tasks

        tasks = list_tasks(
            address=self.dashboard_url,
            filters=[("state", "=", "RUNNING")],
            timeout=30,
            raise_on_missing_output=False,
        )
        return [t for t in tasks if t.name.startswith(name_prefix)]


def _node_ids(dashboard_url: str, expected: int, timeout_s: float = 60.0) -> list:
    from ray.util.state import list_nodes

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            nodes = [n for n in list_nodes(address=dashboard_url, timeout=10) if n.state == "ALIVE"]
            if len(nodes) == expected:
                return nodes
        except Exception:  # noqa: BLE001, S110 -- the dashboard is still starting
            pass
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {dashboard_url} did not show {expected} alive nodes in {timeout_s}s")


@pytest.fixture(scope="session")
def ray_cluster(bucket: S3Bucket) -> Iterator[RayCluster]:
    """Two Ray nodes; like a real cluster's, they hold the store's S3 credentials."""
    ray_bin = require_executable("ray")
    # Ray's socket paths must stay short: a folder of our own directly under /tmp.
    temp_dir = Path(tempfile.mkdtemp(prefix="cdray-", dir="/tmp"))
    env = {**base_env(), **bucket.env()}
    gcs_port, dashboard_port, client_port = free_port(), free_port(), free_port()
    common = [
        "--node-ip-address",
        "127.0.0.1",
        "--object-store-memory",
        str(OBJECT_STORE_BYTES),
        "--disable-usage-stats",
        "--block",
    ]
    head = start_service(
        "ray-head",
        [
            ray_bin,
            "start",
            "--head",
            "--port",
            str(gcs_port),
            "--num-cpus",
            "0",
            "--temp-dir",
            str(temp_dir),
            "--include-dashboard",
            "true",
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard_port),
            "--ray-client-server-port",
            str(client_port),
            *common,
        ],
        env,
        temp_dir,
    )
    services = [head]
    try:
        wait_for_port(gcs_port, timeout_s=60)
        dashboard_url = f"http://127.0.0.1:{dashboard_port}"
        wait_http(f"{dashboard_url}/api/version", head)
        [head_node] = _node_ids(dashboard_url, 1)
        worker = start_service(
            "ray-worker",
            [
                ray_bin,
                "start",
                "--address",
                f"127.0.0.1:{gcs_port}",
                "--num-cpus",
                "1",
                *common,
            ],
            env,
            temp_dir,
        )
        services.append(worker)
        nodes = _node_ids(dashboard_url, 2)
        worker_node = next(n for n in nodes if n.node_id != head_node.node_id)
        yield RayCluster(
            f"127.0.0.1:{gcs_port}",
            dashboard_url,
            head_node.node_id,
            worker_node.node_id,
            services,
            client_address=f"ray://127.0.0.1:{client_port}",
        )
    finally:
        for service in reversed(services):
            service.stop()


@pytest.fixture
def ray_driver(ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[RayCluster]:
    """This test process as a Ray driver of the cluster (what a flow does with RAY_ADDRESS set)."""
    import ray

    ray.shutdown()  # an earlier test may have started a local Ray in this process
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    yield ray_cluster
    ray.shutdown()


# -- Prefect --------------------------------------------------------------------------------------
@dataclass
class PrefectServer:
    api_url: str
    ui_url: str
    home: Path
    service: Service


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real `prefect server start` on loopback; this process's Prefect client points at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {
        **base_env(),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
    }
    service = start_service(
        "prefect-server",
        [
            require_executable("prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env,
        home,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", service, timeout_s=180)
        # Prefect reads its settings once, at import: environment changes come too late.
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
            yield PrefectServer(env["PREFECT_API_URL"], f"http://127.0.0.1:{port}", home, service)
    finally:
        service.stop()


# -- S3 and MLflow --------------------------------------------------------------------------------
@dataclass
class S3Bucket:
    endpoint: str
    name: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def keys(self, prefix: str = "") -> list[str]:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="session")
def bucket(s3_endpoint: str) -> Iterator[S3Bucket]:
    """A bucket for the session, with this process's AWS environment pointing at moto."""
    import boto3

    found = S3Bucket(s3_endpoint, f"it-{uuid.uuid4().hex[:10]}")
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=found.name, CreateBucketConfiguration={"LocationConstraint": REGION})
    with pytest.MonkeyPatch.context() as patch:
        for key, value in found.env().items():
            patch.setenv(key, value)
        yield found


@dataclass
class MlflowServer:
    url: str
    artifact_root: str
    service: Service


@pytest.fixture(scope="session")
def mlflow_server(bucket: S3Bucket, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """`mlflow server` on SQLite, its artifacts in the S3 bucket."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    artifacts = f"s3://{bucket.name}/mlartifacts"
    service = start_service(
        "mlflow-server",
        [
            require_executable("mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            artifacts,
        ],
        {**base_env(), **bucket.env()},
        folder,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", service, timeout_s=180)
        yield MlflowServer(f"http://127.0.0.1:{port}", artifacts, service)
    finally:
        service.stop()


def python() -> str:
    return sys.executable


# -- deployments and a process worker ------------------------------------------------------------
@dataclass
class Worker:
    """prefect.yaml's deployments registered with the server, and a process worker serving them."""

    env: dict[str, str]
    deploy_output: str
    service: Service


def delete_automations_of(deployment_name: str) -> None:
    """Remove the event triggers of a deployment: its runs would compete with the test's."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(deployment_name)
        for automation in client.read_automations():
            if str(deployment.id) in automation.model_dump_json():
                client.delete_automation(automation.id)


@pytest.fixture(scope="session")
def prefect_worker(prefect_api: PrefectServer, ray_cluster: RayCluster, bucket: S3Bucket) -> Iterator[Worker]:
    """`python -m deployments.deploy` then `prefect worker start --pool codedance-process --type process`,
    with RAY_ADDRESS naming the two-node cluster and the AWS environment naming moto."""
    env = {
        **base_env(),
        **bucket.env(),
        "PREFECT_HOME": str(prefect_api.home),
        "PREFECT_API_URL": prefect_api.api_url,
        "CODEDANCE_HOME": str(REPO),
        "RAY_ADDRESS": ray_cluster.address,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    }
    deployed = subprocess.run(
        [sys.executable, "-m", "deployments.deploy"],
        check=False,
        cwd=REPO,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    # The lifecycle's `codedance.model.registered` event would start evaluate-checkpoint runs with
    # the default tiny profile (the trigger passes no overrides): not what these tests look at.
    delete_automations_of("evaluate-checkpoint/evaluate-checkpoint")
    service = start_service(
        "prefect-worker",
        [
            require_executable("prefect"),
            "worker",
            "start",
            "--pool",
            "codedance-process",
            "--type",
            "process",
        ],
        env,
        prefect_api.home,
    )
    try:
        yield Worker(env, deployed.stdout, service)
    finally:
        service.stop(grace_s=30)
