"""The stage layer: one function per lifecycle stage, the same whoever calls it.

Each stage takes typed config sections and `ArtifactRef`s (plus a `StageContext` saying where
artifacts go and where it logs), plans its launch from its config (launch.py) and returns a typed
result. The Prefect tasks (tasks/), the `codedance` CLI and the Mini-CodeDance flow all call these
functions, so a stage runs the same code, on the same resources, from every entry point.

    base_model -> suite_split / merge_sources -> validate_rows -> weak_model -> filter_rows -> synthesize
    -> train_sft -> evaluate -> train_rl (rounds) -> evaluate -> register_and_promote

The names resolve lazily (PEP 562): a stage's cache key covers the code its own module reaches
(keys.py), and importing this package must not make every stage reach every other one.
"""

from __future__ import annotations

from codedance_core.lazy_exports import lazy_getattr

# public name -> the module of this package that defines it
_SOURCES = {
    "StageContext": "context",
    "Tracking": "context",
    "base_model": "models",
    "suite_split": "data",
    "merge_sources": "sources",
    "validate_rows": "data",
    "text_only_copy": "data",
    "weak_model": "filtering",
    "filter_rows": "filtering",
    "synthesize": "synthesis",
    "train_sft": "training",
    "train_rl": "training",
    "evaluate": "evaluation",
    "register_and_promote": "registry",
}

__all__ = list(_SOURCES)


__getattr__ = lazy_getattr(__name__, globals(), _SOURCES)
