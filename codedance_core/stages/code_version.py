"""The code a module runs, derived from its import graph: the source files behind a cache key.

A stage's cached result stays valid while the code that produced it is unchanged. A hand-kept map
from stage to "the parts of the library it uses" goes stale the day someone adds an import (SFT
reaching `data/` and `storage/` through `train/sft_data.py`, say), and a stale map serves stale
results silently. Reading the imports themselves cannot drift: the files hashed are the files
Python would load, found by parsing the source with `ast`, never by importing it (no torch, no
side effects, a few milliseconds a file).

What counts as "imported" errs towards more, because a key that covers too much only costs a
rerun while one that misses a file serves a stale result:
- imports inside functions count: a lazy import is code the module runs, just later;
- `if TYPE_CHECKING:` imports count: some packages resolve their public names lazily through
  `importlib` (`codedance_core.models` does), and the TYPE_CHECKING block is the only static record of
  which submodules those names come from;
- every parent package's `__init__.py` counts, as Python executes each one on the way down;
- in a file that also runs as a script (the sandbox's processes do), an absolute import of a module
  that lies beside it is that sibling, as it is with the script's directory first on `sys.path`.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path

DEFAULT_ROOTS: Mapping[str, Path] = {"codedance_core": Path(__file__).resolve().parents[1]}

_Roots = tuple[tuple[str, Path], ...]


class FirstPartyModuleNotFound(ModuleNotFoundError):
    """A first-party import names a module that is not on disk under its root."""


def module_files(modules: Iterable[str], roots: Mapping[str, Path] | None = None) -> list[Path]:
    """The source files of `modules` and of every first-party module they import, transitively.

    First-party means a top-level package named in `roots` (name -> the package's directory);
    everything else (stdlib, third-party) is not followed. Sorted by path relative to the root.
    """
    return list(_closure(_modules_key(modules), _roots_key(roots))[0])


def code_version(modules: Iterable[str], roots: Mapping[str, Path] | None = None) -> str:
    """16 hex chars of sha256 over (path relative to its root's parent, bytes) of `module_files`.

    Relative paths keep the version independent of where the tree is checked out. Cached per
    process: source files do not change during a run.
    """
    return _code_version(_modules_key(modules), _roots_key(roots))


def third_party_modules(modules: Iterable[str], roots: Mapping[str, Path] | None = None) -> set[str]:
    """Top-level names of the non-first-party, non-stdlib modules that `modules`' closure imports."""
    return set(_closure(_modules_key(modules), _roots_key(roots))[1])


def _modules_key(modules: Iterable[str]) -> tuple[str, ...]:
    if isinstance(modules, str):
        raise TypeError("modules must be an iterable of module names, not one string")
    return tuple(sorted(set(modules)))


def _roots_key(roots: Mapping[str, Path] | None) -> _Roots:
    chosen = DEFAULT_ROOTS if roots is None else roots
    return tuple(sorted((name, Path(path).resolve()) for name, path in chosen.items()))


@cache
def _code_version(modules: tuple[str, ...], roots: _Roots) -> str:
    digest = hashlib.sha256()
    parents = {path: path.parent for _, path in roots}
    for file in _closure(modules, roots)[0]:
        root = next(path for path in parents if file.is_relative_to(path))
        digest.update(file.relative_to(parents[root]).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@cache
def _closure(modules: tuple[str, ...], roots: _Roots) -> tuple[tuple[Path, ...], frozenset[str]]:
    """(the files, sorted; the third-party top-level names) of the modules' import closure."""
    root_of = dict(roots)
    files: dict[str, Path] = {}  # module name -> its source file
    third_party: set[str] = set()
    visited: set[str] = set()
    pending = [(name, "the caller") for name in modules]
    while pending:
        name, importer = pending.pop()
        if name in visited:
            continue
        visited.add(name)
        if name.partition(".")[0] not in root_of:
            raise ValueError(f"{name!r} (imported by {importer}) is not under any of the roots {sorted(root_of)}")
        parts = name.split(".")
        pending.extend((".".join(parts[:i]), importer) for i in range(1, len(parts)))
        file = _module_file(name, root_of[parts[0]])
        if file is None:
            raise FirstPartyModuleNotFound(
                f"{importer} imports {name!r}, which is not on disk under {root_of[parts[0]]}", name=name
            )
        if not file.is_file():
            continue  # a namespace package: a directory with no __init__.py runs no code
        files[name] = file
        imported, outside = _file_imports(name, file, roots)
        third_party |= outside
        pending.extend((module, str(file)) for module in imported)
    ordered = sorted(files.values(), key=lambda path: (_root_name(path, roots), path))
    return tuple(ordered), frozenset(third_party)


def _root_name(file: Path, roots: _Roots) -> str:
    return next(name for name, path in roots if file.is_relative_to(path))


@cache
def _module_file(name: str, root: Path) -> Path | None:
    """The file that defines module `name` under `root`, its top-level package's directory (a
    package's `__init__.py`; a directory for a namespace package), or None when it is not on disk."""
    _, *rest = name.split(".")
    base = root.joinpath(*rest)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file() and rest:
        return base.with_suffix(".py")
    if base.is_dir():
        return base
    return None


@cache
def _file_imports(name: str, file: Path, roots: _Roots) -> tuple[tuple[str, ...], frozenset[str]]:
    """`_imports` of one file, parsed once per process however many closures reach it."""
    third_party: set[str] = set()
    return tuple(_imports(name, file, dict(roots), third_party)), frozenset(third_party)


def _imports(name: str, file: Path, root_of: Mapping[str, Path], third_party: set[str]) -> list[str]:
    """The first-party modules `file` (module `name`) imports; third-party top-level names are added to
    `third_party`. Every import statement in the file counts, wherever it stands."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []

    def absolute(target: str) -> str | None:
        top = target.partition(".")[0]
        if top in root_of:
            return target
        if top in sys.stdlib_module_names:
            return None
        if package and _module_file(f"{package}.{top}", root_of[package.partition(".")[0]]) is not None:
            return f"{package}.{target}"  # a sibling, imported as the file does when run as a script
        third_party.add(top)
        return None

    for node in _import_statements(ast.parse(file.read_bytes(), filename=str(file))):
        if isinstance(node, ast.Import):
            found.extend(filter(None, (absolute(alias.name) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".") if package else []
                if node.level - 1 >= len(anchor):
                    raise FirstPartyModuleNotFound(f"{file}: relative import beyond the top-level package")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                source: str | None = ".".join(anchor + ([node.module] if node.module else []))
            else:
                source = absolute(node.module or "")
            if source is None:
                continue
            found.append(source)
            # `from package import x`: x is a submodule when one is on disk, else a name in package.
            found.extend(
                f"{source}.{alias.name}"
                for alias in node.names
                if alias.name != "*" and _module_file(f"{source}.{alias.name}", root_of[source.partition(".")[0]])
                is not None
            )
    return found


def _import_statements(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth. Imports are statements, so only statement bodies are
    searched: expressions (most of a syntax tree) cannot hold one."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                stack.extend(children)
