"""The infra files agree with each other and with the project: one image name per role tagged
with the project version, one Ray version everywhere, one vLLM version, and a README that names
the ports and variables the files use."""

from __future__ import annotations

import re

import ray

from codedance_core.config.rewards import JudgeConfig
from tests.infra.infra_files import INFRA, build_args, expected_image, load_yaml

README = (INFRA / "README.md").read_text()


def test_the_manifests_run_the_worker_image_of_this_version() -> None:
    worker_image = expected_image("worker")
    raycluster = load_yaml("kuberay/raycluster.yaml")["spec"]
    pods = [raycluster["headGroupSpec"]] + raycluster["workerGroupSpecs"]
    images = {container["image"] for pod in pods for container in pod["template"]["spec"]["containers"]}
    submitter = load_yaml("kuberay/rayjob.yaml")["spec"]["submitterPodTemplate"]["spec"]["containers"]
    images |= {container["image"] for container in submitter}
    assert images == {worker_image}


def test_the_compose_file_runs_the_orchestrator_image_of_this_version() -> None:
    orchestrator_image = expected_image("orchestrator")
    compose_text = (INFRA / "compose" / "docker-compose.yaml").read_text()
    assert f"${{CODEDANCE_ORCHESTRATOR_IMAGE:-{orchestrator_image}}}" in compose_text
    assert (
        f"CODEDANCE_ORCHESTRATOR_IMAGE={orchestrator_image}\n"
        in (INFRA / "compose" / ".env.example").read_text()
    )


def test_the_documented_build_commands_produce_those_tags() -> None:
    for role in ("worker", "orchestrator"):
        build = f"-f infra/docker/{role}.Dockerfile"
        tag = f"-t {expected_image(role)} ."
        assert re.search(re.escape(build) + r"\s+" + re.escape(tag), README), role
        assert f"{build} {tag}" in (INFRA / "docker" / f"{role}.Dockerfile").read_text(), role


def test_one_ray_version_everywhere(dockerfiles: dict) -> None:
    ray_version = load_yaml("kuberay/raycluster.yaml")["spec"]["rayVersion"]
    assert build_args(dockerfiles["worker"])["RAY_VERSION"] == ray_version
    assert build_args(dockerfiles["orchestrator"])["RAY_VERSION"] == ray_version
    assert f'"ray[default]=={ray_version}"' in " ".join(load_yaml("ray/cluster.yaml")["setup_commands"])
    # The client that submits from this environment must speak to that cluster.
    assert ray.__version__ == ray_version


def test_the_launcher_installs_what_the_worker_image_installs(dockerfiles: dict) -> None:
    worker_args = build_args(dockerfiles["worker"])
    setup = " ".join(load_yaml("ray/cluster.yaml")["setup_commands"])
    assert f'"vllm=={worker_args["VLLM_VERSION"]}"' in setup
    assert worker_args["TORCH_INDEX_URL"] in setup
    # The same project extras: a launcher node must have what tests/infra/test_worker_image.py checks.
    worker_runs = " ".join(i.arguments for i in dockerfiles["worker"] if i.keyword == "RUN")
    project_spec = re.search(r'"\.\[[\w,]+\]"', worker_runs)
    assert project_spec is not None and project_spec[0] in setup


def test_the_readme_names_the_ports_services_and_variables_the_files_use() -> None:
    for variable in ("RAY_ADDRESS", "PREFECT_API_URL", "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL"):
        assert f"`{variable}`" in README, variable
    # The variable the serve script tells you to set is the one the judge client reads.
    judge_variable = JudgeConfig().base_url_env
    assert f"`{judge_variable}`" in README
    assert (
        f"export {judge_variable}=http://JUDGE_HOST:18901/v1"
        in (INFRA / "vllm" / "serve_judge.sh").read_text()
    )
    assert "port 18901" in README and "port 18902" in README
    metadata = load_yaml("kuberay/raycluster.yaml")["metadata"]
    head_service = f"{metadata['name']}-head-svc.{metadata['namespace']}.svc"
    assert f"RAY_ADDRESS=http://{head_service}:8265" in (INFRA / "kuberay" / "raycluster.yaml").read_text()
    assert f"http://{head_service}:8265" in README and f"ray://{head_service}:10001" in README
