"""The template's command line: bubblewrap by default, a clear refusal without it, loud 'none'."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from codedance_core.sandbox import IsolationUnavailable, SandboxConfig, SandboxPool
from codedance_core.sandbox.isolation import namespace_arguments, session_identity, template_command


def test_bwrap_command_isolates_network_pids_and_environment(tmp_path):
    argv, env, image_dir = template_command(SandboxConfig(), tmp_path)
    assert argv[0].endswith("bwrap") and env == {}
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv", "--remount-ro"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert image_dir == "/opt/codedance-images"


def test_missing_bwrap_is_a_clear_error_at_pool_start(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH where no bwrap exists
    with pytest.raises(IsolationUnavailable, match="bubblewrap"):
        SandboxPool.sync(SandboxConfig(workers=1)).start()


def test_isolation_none_runs_but_warns_loudly(capfd):
    with pytest.warns(RuntimeWarning, match="ISOLATION IS OFF"):
        pool = SandboxPool.sync(SandboxConfig(isolation="none", workers=1)).start()
    try:
        result = pool.run_once(Image.new("RGB", (64, 64)), "import os\nprint(sorted(os.listdir('.')))")
    finally:
        pool.close()
    assert result.stdout == "['input_image.jpg']\n"
    assert "ISOLATION IS OFF" in capfd.readouterr().err


def test_without_root_bwrap_starts_in_a_user_namespace_where_the_template_is_root():
    args = namespace_arguments(user_namespace=True)
    assert args[:5] == ["--unshare-user", "--uid", "0", "--gid", "0"]
    # Sessions map their own uid onto the namespace's root, which needs CAP_SETFCAP (Linux 5.12+).
    assert "CAP_SETFCAP" in args and "CAP_SETFCAP" not in namespace_arguments()
    assert session_identity(SandboxConfig(isolation="none")) == "none"
    assert session_identity(SandboxConfig()) == ("uid" if os.geteuid() == 0 else "user_namespace")
