"""Where Ray is: one parsed form of RAY_ADDRESS, and the connection it calls for.

RAY_ADDRESS names one of four different things, and they are reached in different ways:

- unset: no cluster; a small local Ray is started in this process on demand;
- `ray://HOST[:PORT]`: a Ray Client server (port 10001 on a head node); `ray.init` connects
  through it, and this process's tasks run on the cluster;
- `HOST:PORT` or `auto`: a cluster's GCS, for a process that runs on one of the cluster's nodes
  (or next to it on the same network); `ray.init` joins it as a driver;
- `http(s)://HOST:PORT`: the dashboard of a head node (port 8265), which serves the Jobs API.
  It is what infra/README.md documents for the orchestrator, and `ray.init` cannot use it:
  work goes to it as a job (`codedance_core.stages.ray_jobs`), never through `ray.init`.

Parsing is pure and imports no Ray, so a wrong address fails at the edge with a message that
lists the forms, not deep inside Ray with a message about a missing protocol module.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

ACCEPTED_FORMS = (
    "unset or empty (start a local Ray), "
    "ray://HOST[:PORT] (a Ray Client server), "
    "HOST:PORT or auto (a cluster's GCS), "
    "http://HOST[:PORT] or https://HOST[:PORT] (a dashboard's Jobs API)"
)
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024  # else a local Ray claims a large share of RAM

# A host name, an IPv4 address, or an IPv6 address in brackets; then a port.
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_GCS_ADDRESS = re.compile(rf"{_HOST}:(?P<port>[0-9]{{1,5}})")

_connect_lock = threading.Lock()


@dataclass(frozen=True)
class RayAddress:
    """A parsed RAY_ADDRESS: what kind of endpoint it names, and the address itself."""

    kind: Literal["local", "client", "cluster", "dashboard"]
    value: str | None  # None for local; otherwise the address as Ray takes it


def parse_ray_address(text: str | None) -> RayAddress:
    """The RayAddress `text` names; ValueError, listing the accepted forms, for anything else."""
    address = (text or "").strip()
    if not address:
        return RayAddress("local", None)
    if address == "auto":
        return RayAddress("cluster", address)
    if "://" not in address:
        match = _GCS_ADDRESS.fullmatch(address)
        if match and _valid_port(match["port"]):
            return RayAddress("cluster", address)
        raise _rejected(address)
    scheme = address.split("://", 1)[0].lower()
    parts = urlsplit(address)
    try:
        port = parts.port  # ValueError for a port that is not a number in range
    except ValueError:
        raise _rejected(address) from None
    if not parts.hostname or port == 0:
        raise _rejected(address)
    if scheme == "ray" and parts.path in ("", "/") and not parts.query:
        return RayAddress("client", address.rstrip("/"))
    if scheme in ("http", "https"):
        return RayAddress("dashboard", address.rstrip("/"))
    raise _rejected(address)


def ray_address_from_env() -> RayAddress:
    """The RayAddress named by the RAY_ADDRESS environment variable (local when unset)."""
    return parse_ray_address(os.environ.get("RAY_ADDRESS"))


def connect(address: RayAddress, *, runtime_env: dict | None = None, num_cpus: int | None = None) -> None:
    """Make this process a Ray driver at `address`, once per process (a no-op when connected).

    - local: start a Ray of `num_cpus` CPUs (all of the machine's by default) with a small object
      store and no dashboard; Ray's token authentication is off unless RAY_AUTH_MODE says
      otherwise, as nothing but this process talks to it.
    - client (`ray://`) and cluster (GCS address): connect. `runtime_env` becomes the job's
      runtime env; through a Ray Client it is what makes the cluster's workers run the code this
      process shipped (`ray_jobs.code_runtime_env`) rather than whatever their image installed.
    - dashboard: refused. An http(s) address is the Jobs API, which `ray.init` cannot connect
      to; submit the work with `ray_jobs.run_ray_job` instead.

    The address is always passed explicitly (`local` for a new local Ray), so a RAY_ADDRESS in
    the environment cannot make `ray.init` go somewhere other than what `address` says. A lock
    makes concurrent first calls (Prefect runs sync tasks in worker threads) connect once.
    """
    if address.kind == "dashboard":
        raise ValueError(
            f"{address.value} is a Ray dashboard (the Jobs API): ray.init cannot connect to it. "
            "Submit the work with codedance_core.stages.ray_jobs.run_ray_job, or set RAY_ADDRESS "
            "to a ray://HOST:10001 Ray Client address to run tasks from this process."
        )
    import ray

    with _connect_lock:
        if ray.is_initialized():
            return
        options: dict[str, Any] = {}
        if runtime_env is not None:
            options["runtime_env"] = runtime_env
        if address.kind == "local":
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            options.update(
                address="local",
                num_cpus=num_cpus or os.cpu_count() or 2,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                include_dashboard=False,
            )
        else:
            options["address"] = address.value
        _init_keeping_sigterm_handler(**options)


def _init_keeping_sigterm_handler(**options: Any) -> None:
    """ray.init, without losing the process's own SIGTERM handler.

    ray.init replaces the SIGTERM handler with `sys.exit`. When a flow run is cancelled, the
    Prefect worker SIGTERMs the flow-run process, and Prefect's handler is what turns that
    signal into a cancellation (state Cancelled, on_cancellation hooks); under Ray's, the run
    ends Crashed. Either way the stage cancels or stops its Ray work on the way out. Ray's
    handler is kept only when the process had none of its own (a plain script).
    """
    import ray

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    ray.init(**options)
    if callable(previous):
        signal.signal(signal.SIGTERM, previous)


def _valid_port(port: str) -> bool:
    return 0 < int(port) < 65536


def _rejected(address: str) -> ValueError:
    return ValueError(f"RAY_ADDRESS {address!r} is not one of the accepted forms: {ACCEPTED_FORMS}")
