"""The code a module runs, read from its imports: on a copy of the real package (edits change the
version of the stages that reach them, and only those) and on small packages written here."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from codedance_core.stages.code_version import (
    DEFAULT_ROOTS,
    FirstPartyModuleNotFound,
    code_version,
    module_files,
    third_party_modules,
)

PACKAGE = DEFAULT_ROOTS["codedance_core"]
SFT = ["codedance_core.train.sft"]


def copy_package(destination: Path) -> dict[str, Path]:
    """A copy of the real codedance_core under `destination`, as roots for the functions."""
    copy = shutil.copytree(PACKAGE, destination / "codedance_core", ignore=shutil.ignore_patterns("__pycache__"))
    return {"codedance_core": copy}


def append_comment(file: Path) -> None:
    file.write_text(file.read_text() + "\n# an edit\n")


def write_package(root: Path, files: dict[str, str]) -> None:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


def relative_names(files: list[Path], root: Path) -> set[str]:
    return {file.relative_to(root).as_posix() for file in files}


def test_an_edit_sft_reaches_only_through_sft_data_changes_its_version(tmp_path: Path) -> None:
    untouched = copy_package(tmp_path / "untouched")
    edited = copy_package(tmp_path / "edited")
    # train/sft.py never names data/io.py: train/sft_data.py imports it inside a function.
    assert "data/io.py" in relative_names(module_files(SFT, edited), edited["codedance_core"])
    append_comment(edited["codedance_core"] / "data" / "io.py")

    # The version hashes paths relative to the root, so an unedited copy matches the real tree.
    assert code_version(SFT, untouched) == code_version(SFT)
    assert code_version(SFT, edited) != code_version(SFT, untouched)


def test_an_edit_to_a_module_sft_never_imports_leaves_its_version(tmp_path: Path) -> None:
    untouched = copy_package(tmp_path / "untouched")
    edited = copy_package(tmp_path / "edited")
    append_comment(edited["codedance_core"] / "serve" / "app.py")

    assert code_version(SFT, edited) == code_version(SFT, untouched)
    assert code_version(["codedance_core.serve.app"], edited) != code_version(
        ["codedance_core.serve.app"], untouched
    )


def test_the_real_closures_include_what_the_stale_hand_kept_map_missed() -> None:
    sft = relative_names(module_files(SFT), PACKAGE)
    assert {"data/io.py", "storage/uris.py", "train/sft_data.py", "__init__.py", "train/__init__.py"} <= sft
    assert "serve/app.py" not in sft
    tiny = relative_names(module_files(["codedance_core.models.tiny"]), PACKAGE)
    assert {"models/copy_texts.py", "synthesis/shapes.py"} <= tiny


def test_the_version_is_16_hex_chars_and_ignores_order_and_repeats() -> None:
    version = code_version(["codedance_core.train.grpo", "codedance_core.train.sft"])
    assert len(version) == 16 and int(version, 16) >= 0
    assert code_version(["codedance_core.train.sft", "codedance_core.train.grpo", "codedance_core.train.sft"]) == version
    assert code_version(SFT) != version
    with pytest.raises(TypeError, match="not one string"):
        code_version("codedance_core.train.sft")


SMALL_PACKAGE = {
    "pkg/__init__.py": "from pkg.util import helper\nVERSION = 1\n",
    "pkg/util.py": "import os.path\n\ndef helper():\n    return 1\n",
    "pkg/unused.py": "import json\n",
    "pkg/lazy.py": "import polars\n",
    "pkg/typed.py": "",
    "pkg/shared.py": "THING = 1\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/sibling.py": "",
    "pkg/sub/a.py": """
        from __future__ import annotations

        from typing import TYPE_CHECKING

        import numpy as np

        from . import sibling
        from ..shared import THING
        from pkg import VERSION, util

        if TYPE_CHECKING:
            from pkg.typed import Something

        if __package__:
            from . import sibling as same
        else:  # run as a script, with this directory first on sys.path
            import sibling as same

        def later():
            import pkg.lazy
            from torch import nn
            return pkg.lazy, nn
    """,
}


def test_relative_lazy_type_checking_and_parent_package_imports_are_followed(tmp_path: Path) -> None:
    write_package(tmp_path, SMALL_PACKAGE)
    roots = {"pkg": tmp_path / "pkg"}

    files = relative_names(module_files(["pkg.sub.a"], roots), tmp_path)

    assert files == {
        "pkg/__init__.py",  # run on the way to pkg.sub.a; it imports pkg.util
        "pkg/util.py",  # `from pkg import util`: a submodule; VERSION is a name, and no module
        "pkg/sub/__init__.py",
        "pkg/sub/a.py",
        "pkg/sub/sibling.py",  # `from . import sibling`, and `import sibling` when run as a script
        "pkg/shared.py",  # `from ..shared import THING`
        "pkg/typed.py",  # under TYPE_CHECKING
        "pkg/lazy.py",  # inside a function
    }
    assert third_party_modules(["pkg.sub.a"], roots) == {"numpy", "torch", "polars"}


def test_more_roots_follow_more_packages(tmp_path: Path) -> None:
    write_package(tmp_path, {"app/__init__.py": "", "app/main.py": "from lib import tool\n",
                             "lib/__init__.py": "", "lib/tool.py": "import yaml\n"})
    app_only = {"app": tmp_path / "app"}
    both = {"app": tmp_path / "app", "lib": tmp_path / "lib"}

    assert relative_names(module_files(["app.main"], app_only), tmp_path) == {"app/__init__.py", "app/main.py"}
    assert third_party_modules(["app.main"], app_only) == {"lib"}
    assert relative_names(module_files(["app.main"], both), tmp_path) == {
        "app/__init__.py", "app/main.py", "lib/__init__.py", "lib/tool.py",
    }
    assert third_party_modules(["app.main"], both) == {"yaml"}
    # The root's name is part of each hashed path: the same bytes under another root differ.
    assert code_version(["app.main"], both) != code_version(["app.main"], app_only)


@pytest.mark.parametrize("statement", ["import pkg.gone", "from pkg.gone import x", "from .gone import x"])
def test_a_missing_first_party_module_names_the_file_that_imports_it(tmp_path: Path, statement: str) -> None:
    write_package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": f"def f():\n    {statement}\n"})

    with pytest.raises(FirstPartyModuleNotFound, match=r"pkg/a\.py imports 'pkg\.gone'"):
        module_files(["pkg.a"], {"pkg": tmp_path / "pkg"})


def test_a_requested_module_outside_the_roots_is_refused() -> None:
    with pytest.raises(ValueError, match="not under any of the roots"):
        module_files(["tasks.common"])


def test_the_third_party_modules_of_sft_are_its_libraries_not_the_stdlib() -> None:
    names = third_party_modules(SFT)

    assert {"torch", "transformers", "deepspeed", "polars", "fsspec", "PIL"} <= names
    assert not names & {"os", "json", "math", "__future__", "collections", "codedance_core"}
    assert "prefect" not in names


def test_the_sandbox_scripts_sibling_imports_are_first_party() -> None:
    sandbox = ["codedance_core.sandbox.zygote"]

    assert not third_party_modules(sandbox) & {"wire", "forking", "user_code", "confine", "session_process"}
    assert "sandbox/user_code.py" in relative_names(module_files(sandbox), PACKAGE)
