"""Register the deployments of prefect.yaml with a Prefect server.

Creates the process work pool the deployments use (when missing), then runs `prefect deploy
--all` from the repository root with CODEDANCE_HOME set, so workers on this machine run the
flows from this checkout. Point PREFECT_API_URL at the server first (`make ui` starts one on
loopback and prints it).

    python -m deployments.deploy [--pool codedance-process]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO / "prefect.yaml"


def work_pools(config_path: Path = PREFECT_YAML) -> set[str]:
    """The work pools prefect.yaml's deployments name."""
    config = yaml.safe_load(config_path.read_text())
    return {deployment["work_pool"]["name"] for deployment in config["deployments"]}


def prefect(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    binary = Path(sys.executable).parent / "prefect"
    env = {**os.environ, "CODEDANCE_HOME": str(REPO)}
    return subprocess.run([str(binary), *args], cwd=REPO, env=env, check=check, text=True, capture_output=True)


def ensure_pool(name: str) -> None:
    if prefect("work-pool", "inspect", name, check=False).returncode == 0:
        return
    prefect("work-pool", "create", name, "--type", "process")


def deploy_all() -> str:
    for pool in sorted(work_pools()):
        ensure_pool(pool)
    return prefect("--no-prompt", "deploy", "--all").stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    if not os.environ.get("PREFECT_API_URL"):
        sys.exit("PREFECT_API_URL is not set: start a server (`make ui`) and export the URL it prints")
    print(deploy_all())


if __name__ == "__main__":
    main()
