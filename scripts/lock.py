"""Re-resolve the whole dependency stack and write the lock files (`make lock` runs this, then the tests).

Two environments cannot share one resolution: the GPU worker installs vLLM, which caps FastAPI
below what Prefect needs (constraints.txt). So there are two locks, resolved from the same
inputs (pyproject.toml's extras, the policy pins in constraints.txt, the worker image's Ray and
vLLM versions):

- `locks/cpu.txt`: development machines, CI (`make setup`) and the orchestrator image;
- `locks/gpu-worker.txt`: the GPU worker image.

The worker is resolved first; then the CPU set is resolved again with each package the two share
pinned to the worker's version wherever that changes nothing else, so the tests here run the
transformers, torch, numpy... that the workers run; then the worker likewise takes the CPU set's
version of what is left. What still differs is listed at the top of both files. Resolution reads package metadata only (`pip install --dry-run --report`): no
environment is touched, a run takes about a minute.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCKS = REPO / "locks"
CPU_LOCK = LOCKS / "cpu.txt"
WORKER_LOCK = LOCKS / "gpu-worker.txt"
POLICY = REPO / "constraints.txt"
WORKER_DOCKERFILE = REPO / "infra" / "docker" / "worker.Dockerfile"
CPU_REQUIREMENTS = ["-e", f"{REPO}[orchestrator,train,dev]"]
INPUTS = (REPO / "pyproject.toml", POLICY, WORKER_DOCKERFILE)


def inputs_digest() -> str:
    """What the locks were resolved from; the test of the locks compares it with the files now."""
    digest = hashlib.sha256()
    for path in INPUTS:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def worker_requirements() -> list[str]:
    """The worker image's project install, with its Ray and vLLM versions read from the Dockerfile."""
    text = WORKER_DOCKERFILE.read_text()
    versions = dict(re.findall(r"^ARG (RAY_VERSION|VLLM_VERSION)=(\S+)", text, flags=re.MULTILINE))
    return [
        f"ray[default]=={versions['RAY_VERSION']}",
        f"vllm=={versions['VLLM_VERSION']}",
        f"{REPO}[train,gpu,worker]",
    ]


def resolve(requirements: list[str], constraints: list[str]) -> dict[str, str]:
    """{canonical name: version} of what pip would install from nothing, the project excluded."""
    with tempfile.TemporaryDirectory() as scratch:
        extra = Path(scratch) / "extra-constraints.txt"
        extra.write_text("\n".join(constraints) + "\n")
        report = Path(scratch) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        command += ["--report", str(report), "-c", str(POLICY), "-c", str(extra), *requirements]
        completed = subprocess.run(command, check=False, capture_output=True, text=True)
        if completed.returncode != 0:
            raise ResolutionError(
                completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "pip failed"
            )
        installs = json.loads(report.read_text())["install"]
    # A local version label (torch's `+cpu`) is dropped so the CUDA build of the same release matches.
    return {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"].split("+", 1)[0]
        for item in installs
        if canonicalize_name(item["metadata"]["name"]) != "codedance"
    }


class ResolutionError(RuntimeError):
    pass


def align(
    requirements: list[str], versions: dict[str, str], reference: dict[str, str], log
) -> dict[str, str]:
    """`versions` (a resolution of `requirements`) with each package it shares with `reference` moved
    to the reference's version, one at a time, where that moves nothing else away from both its
    current and its reference version (pinning FastAPI must not pull an older Prefect)."""
    pins: list[str] = []
    for name in sorted(n for n in versions if n in reference and versions[n] != reference[n]):
        if versions.get(name) == reference[name]:
            continue  # an earlier pin brought it along
        try:
            candidate = resolve(requirements, [*pins, f"{name}=={reference[name]}"])
        except ResolutionError as error:
            log(f"  {name} stays {versions[name]} (other side {reference[name]}): {error}")
            continue
        moved = [n for n in candidate if candidate[n] != versions.get(n) and candidate[n] != reference.get(n)]
        if moved:
            log(
                f"  {name} stays {versions[name]}: {reference[name]} would move "
                + ", ".join(f"{n} to {candidate[n]}" for n in moved)
            )
            continue
        pins.append(f"{name}=={reference[name]}")
        versions = candidate
        log(f"  {name} {reference[name]}, as on the other side")
    return versions


def differences(cpu: dict[str, str], worker: dict[str, str]) -> list[str]:
    return [
        f"{n}: {cpu[n]} here, {worker[n]} on the GPU worker"
        for n in sorted(cpu)
        if n in worker and cpu[n] != worker[n]
    ]


def render(title: str, versions: dict[str, str], differing: list[str]) -> str:
    lines = [
        f"# {title}",
        "# Generated by `make lock` (scripts/lock.py) from pyproject.toml, constraints.txt and the worker",
        "# image's Ray/vLLM versions; do not edit by hand. CPython 3.11, Linux x86_64.",
        f"# inputs: {inputs_digest()}",
    ]
    lines += ["# differs between the two locks: " + item for item in differing]
    lines += [f"{name}=={version}" for name, version in sorted(versions.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="Only say whether the locks match their inputs (exit 1 if not)."
    )
    args = parser.parse_args()
    if args.check:
        stale = [
            p.name
            for p in (CPU_LOCK, WORKER_LOCK)
            if not p.exists() or f"# inputs: {inputs_digest()}" not in p.read_text()
        ]
        print(json.dumps({"stale": stale}))
        sys.exit(1 if stale else 0)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log("resolving the GPU worker's stack")
    worker = resolve(worker_requirements(), [])
    log("resolving the CPU stack, aligned with the worker's versions")
    cpu = align(CPU_REQUIREMENTS, resolve(CPU_REQUIREMENTS, []), worker, log)
    log("aligning the worker with what is left")
    worker = align(worker_requirements(), worker, cpu, log)
    differing = differences(cpu, worker)
    LOCKS.mkdir(exist_ok=True)
    CPU_LOCK.write_text(
        render("Lock of the CPU stack: make setup, CI, the orchestrator image.", cpu, differing)
    )
    WORKER_LOCK.write_text(
        render("Lock of the GPU worker image (infra/docker/worker.Dockerfile).", worker, differing)
    )
    print(json.dumps({"cpu": len(cpu), "gpu_worker": len(worker), "differing": differing}, indent=2))


if __name__ == "__main__":
    main()
