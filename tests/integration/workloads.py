"""A small flow whose one stage runs a sleeping function on Ray, for the fault tests.

It uses the pipeline's own machinery (a `@stage` function launched by its plan, wrapped by
`stage_task` with its retry rule), so a test that kills its Ray worker or cancels its flow run checks
what a real stage would do. This module is importable on the Ray workers (the cluster's PYTHONPATH
holds the repository) and is the entrypoint of the `sleeper` test deployment.
"""

from __future__ import annotations

import tempfile

from prefect import flow

from codedance_core.stages import StageContext
from codedance_core.stages.keys import stage
from codedance_core.stages.launch import LaunchPlan
from tasks.common import stage_task


@stage("sleeper")
def sleeper_stage(marker: str, seconds: float, ray_name: str, ctx: StageContext) -> dict:
    """A stage shaped like the heavy ones: its work is a Ray task named `ray_name`.
    (Its entry point lives in its own module so Ray workers import it by name: a deployment loads
    this file by path, under a module name the workers cannot import.)"""
    plan = LaunchPlan.for_task(ray_name, "tests.integration.ray_work:sleep_unless_marked")
    return ctx.launch(plan, {"marker": marker, "seconds": seconds})


sleeper_task = stage_task(sleeper_stage)


@flow(name="sleeper")
def sleeper(marker: str, seconds: float = 300.0, ray_name: str = "sleeper") -> dict:
    return sleeper_task(marker, seconds, ray_name, ctx=StageContext(tempfile.gettempdir() + "/codedance-sleeper"))
