"""The key of a stage call: what its result depends on, and nothing else.

Three things decide what a stage produces: the digests of its input artifacts (`ArtifactRef.digest`,
never the URI or the data), the digests of the config sections it reads, and the code it runs,
derived from the stage module's import graph (`code_version`), so an edit anywhere a stage reaches
reruns it and an edit elsewhere does not. Where results are logged or stored (`StageContext`) does
not change them and is left out.

The same key is the Prefect cache key of the task that wraps the stage (tasks/common.py) and the
name of the Ray job that runs it on a cluster, so a flow run that restarts finds both its cached
result and, while it is still running, its job.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from codedance_core.config.base import canonical_json
from codedance_core.stages.code_version import DEFAULT_ROOTS, code_version
from codedance_core.stages.context import CallId, StageContext
from codedance_core.storage import ArtifactRef


def fingerprint(value: Any) -> Any:
    """The part of a stage input that its output depends on, as JSON-able data."""
    if isinstance(value, StageContext):
        return None
    if isinstance(value, ArtifactRef):
        return {"artifact": value.digest}
    if isinstance(value, BaseModel):
        digest = getattr(value, "digest", None)
        if callable(digest):
            return {"config": digest()}
        return fingerprint(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): fingerprint(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fingerprint(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def stage_code_version(stage: Callable[..., Any]) -> str:
    """Digest of the code a stage runs: its module and everything that module imports (within
    codedance_core, and within the stage's own package when it lives elsewhere, e.g. a test's)."""
    module = stage.__module__
    top = module.partition(".")[0]
    if top in DEFAULT_ROOTS:
        return code_version([module])
    source = Path(sys.modules[module].__file__ or "")
    if "." in module:  # a module of another package: follow that package too
        return code_version([module], {**DEFAULT_ROOTS, top: source.parents[module.count(".") - 1]})
    # A file loaded on its own (a flow file a deployment loads by path): its bytes, and the stage
    # layer it builds on.
    own = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    return hashlib.sha256(f"{own}{code_version(['codedance_core.stages.launch'])}".encode()).hexdigest()[:16]


def stage_key(stage: Callable[..., Any], inputs: Mapping[str, Any]) -> str:
    """sha256 over the stage's name, its code and the fingerprints of its inputs."""
    payload = {
        "stage": f"{stage.__module__}.{stage.__qualname__}",
        "code": stage_code_version(stage),
        "inputs": {name: fingerprint(value) for name, value in sorted(inputs.items())},
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def stage(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as a stage: every call gets its `CallId` (name, key, code version) in its
    context, which names its MLflow run, its Ray job and its folder in the store.

    The function must take its `StageContext` as a parameter named `ctx`; the decorated function
    keeps the original's signature (`inspect.signature` follows `__wrapped__`), so a Prefect task
    made from it sees the same parameters and computes the same key (tasks/common.py)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)
        if "ctx" not in signature.parameters:
            raise TypeError(f"stage {name!r}: {fn.__qualname__} has no `ctx` parameter")

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            ctx = bound.arguments["ctx"]
            if not isinstance(ctx, StageContext):
                raise TypeError(f"stage {name!r}: ctx must be a StageContext, not {type(ctx).__name__}")
            call_id = CallId(stage=name, key=stage_key(fn, bound.arguments), code=stage_code_version(fn))
            bound.arguments["ctx"] = ctx.for_call(call_id)
            return fn(*bound.args, **bound.kwargs)

        call.stage_name = name  # type: ignore[attr-defined]
        return call

    return decorate
