"""The sandbox: isolated, stateful, fast execution of model-written Python against an image.

This package is the only place in the project where model code is executed. A `SandboxPool`
runs a few pre-imported template processes inside bubblewrap; each `Session` is a process
forked from one of them, confined to its own uid and private working directory, holding
`input_image` and the variables of earlier turns. `execute` returns an `ExecResult` with an
explicit status. See docs/method.md §3 for the semantics and `zygote` for the design.

    from codedance_core.sandbox import SandboxConfig, SandboxPool
    async with SandboxPool(SandboxConfig()) as pool:
        session = await pool.open_session(image)
        result = await session.execute("print(input_image.size)")
        await session.close()
"""

from codedance_core.config.sandbox import SandboxConfig
from codedance_core.sandbox.isolation import IsolationUnavailable
from codedance_core.sandbox.pool import SandboxPool, Session, SyncSandboxPool, SyncSession
from codedance_core.sandbox.result import ExecResult, Status
from codedance_core.sandbox.worker import WorkerDied

__all__ = [
    "ExecResult",
    "IsolationUnavailable",
    "SandboxConfig",
    "SandboxPool",
    "Session",
    "Status",
    "SyncSandboxPool",
    "SyncSession",
    "WorkerDied",
]
