"""Package names that resolve on first use (PEP 562), for packages whose modules are heavy to import.

`codedance_core.models` keeps torch and transformers out of processes that only touch its constants;
`codedance_core.stages` keeps each stage's import graph (and so its cache key) to its own module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, namespace: dict[str, Any], sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: name -> the attribute of `package.<sources[name]>`,
    stored in the package's `namespace` once resolved, so later lookups skip it."""

    def __getattr__(name: str) -> Any:
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{source}"), name)
        namespace[name] = value
        return value

    return __getattr__
