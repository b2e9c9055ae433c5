"""What the fault tests run on Ray workers: a function that sleeps once, then answers at once."""

from __future__ import annotations

import os
import time
from pathlib import Path


def sleep_unless_marked(call: dict) -> dict:
    """Runs on a Ray worker (a stage's entry point: one argument, the call). The first attempt
    leaves a marker and sleeps (long enough to be killed or cancelled); a later attempt sees the
    marker and returns at once."""
    import ray

    path = Path(call["marker"])
    first_attempt = not path.exists()
    if first_attempt:
        path.write_text(str(os.getpid()))
        time.sleep(call["seconds"])
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "first_attempt": first_attempt,
    }
