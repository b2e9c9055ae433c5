"""A stage as a Ray job: the orchestrator submits it, and this module is its driver on the cluster.

With `RAY_ADDRESS=http://head:8265` the calling process (a Prefect flow run, the CLI) does not drive
Ray itself: it writes the stage's plan and call into the artifact store, submits

    python -m codedance_core.stages.job_entry <store root> <call folder>

through the Jobs API with a runtime environment that ships this checkout's `codedance_core` (the
code the stage's key was computed from), and streams the job's logs while it runs. On the cluster
this module reads the call back, runs the plan exactly as a local driver would (`run_on_cluster`)
and leaves the result beside the call. The job's id is derived from the stage's key, so a flow run
that restarts reattaches to a job still running instead of starting a second one.
"""

from __future__ import annotations

import pickle
import shlex
import sys
from collections.abc import Callable
from typing import Any

from codedance_core.stages.context import CallId
from codedance_core.stages.launch import (
    CALL_FILE,
    RESULT_FILE,
    LaunchPlan,
    read_result,
    run_on_cluster,
    write_result,
)
from codedance_core.stages.ray_address import RayAddress, connect, ray_address_from_env
from codedance_core.storage import ArtifactStore


def run_as_job(
    plan: LaunchPlan, call: Any, store: ArtifactStore, call_id: CallId, address: RayAddress, log: Callable[[str], None]
) -> Any:
    """Submit (or reattach to) the stage's job and return the result its driver stored."""
    from codedance_core.stages.ray_jobs import JobSpec, code_runtime_env, run_ray_job

    call_path = f"{call_id.folder}/{CALL_FILE}"
    if not store.exists(f"{call_id.folder}/{RESULT_FILE}"):
        store.write_bytes(call_path, pickle.dumps((plan, call, call_id)))
    spec = JobSpec(
        entrypoint=shlex.join(["python", "-m", "codedance_core.stages.job_entry", store.root, call_id.folder]),
        runtime_env=code_runtime_env(call_id.code, {"CODEDANCE_STAGE_KEY": call_id.key}),
        metadata={"codedance.stage": plan.stage, "codedance.key": call_id.key, "codedance.code": call_id.code},
    )
    record = run_ray_job(str(address.value), f"codedance-{call_id.name}", spec, log)
    log(f"{plan.stage}: Ray job {record.submission_id} {record.status}" + (" (reattached)" if record.attached else ""))
    return read_result(store, call_id.folder)


def main(argv: list[str] | None = None) -> None:
    """The job's driver: read the call, run its plan on this cluster, store the result."""
    store_root, folder = (argv if argv is not None else sys.argv[1:])[:2]
    store = ArtifactStore(store_root)
    plan, call, call_id = pickle.loads(store.read_bytes(f"{folder}/{CALL_FILE}"))
    connect(ray_address_from_env())
    result = run_on_cluster(plan, call, store, call_id)
    if plan.kind != "ray-train":  # Ray Train's rank 0 has stored it already
        write_result(store, f"{folder}/{RESULT_FILE}", result)
    print(f"{plan.stage}: done; result in {store.uri(folder)}")


if __name__ == "__main__":
    main()
