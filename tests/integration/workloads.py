"""Small flows whose one stage runs a sleeping function on Ray, for the fault tests.

They use the pipeline's own machinery (`run_on_ray`, `retry_on_infrastructure`), so a test that
kills their Ray worker or cancels their flow run checks what a real stage would do. This module
is importable on the Ray workers (the cluster's PYTHONPATH holds the repository) and is the
entrypoint of the `sleeper` test deployment.
"""

from __future__ import annotations

from prefect import flow, task

from tasks.common import retry_on_infrastructure, run_on_ray

# In its own module so that Ray workers import it by name: a deployment loads this file by path,
# under a module name the workers cannot import.
from tests.integration.ray_work import sleep_unless_marked


@task(retries=1, retry_delay_seconds=0, retry_condition_fn=retry_on_infrastructure)
def sleeper_stage(marker: str, seconds: float, ray_name: str) -> dict:
    """A stage shaped like the heavy ones: its work is a Ray task named `ray_name`."""
    return run_on_ray(sleep_unless_marked, marker, seconds, name=ray_name, num_cpus=1)


@flow(name="sleeper")
def sleeper(marker: str, seconds: float = 300.0, ray_name: str = "sleeper") -> dict:
    return sleeper_stage(marker, seconds, ray_name)
