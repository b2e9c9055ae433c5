"""The KubeRay manifests, validated against pydantic models of the fields we rely on (the CRD
schemas are not available offline), then checked for what the paper profile needs: 8-GPU
workers, the endpoints from one Secret, and a RayJob that targets this cluster."""

from __future__ import annotations

import re
import shlex
from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from codedance_core.config import load_profile
from tests.infra.infra_files import load_yaml

DNS_1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
SECRET_NAME = "codedance-endpoints"
ENDPOINTS_FROM_SECRET = {
    "MLFLOW_TRACKING_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}


class KubeModel(BaseModel):
    # Kubernetes objects have many fields we do not use; the ones we do are typed below.
    model_config = ConfigDict(extra="allow")


class Metadata(KubeModel):
    name: str = Field(pattern=DNS_1123)
    namespace: str = Field(pattern=DNS_1123)


class SecretKeyRef(KubeModel):
    name: str
    key: str
    optional: bool = False


class EnvSource(KubeModel):
    secretKeyRef: SecretKeyRef


class EnvVar(KubeModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str | None = None
    valueFrom: EnvSource | None = None

    @model_validator(mode="after")
    def value_or_source(self) -> EnvVar:
        if (self.value is None) == (self.valueFrom is None):
            raise ValueError(f"env {self.name}: exactly one of value and valueFrom")
        return self


class Resources(KubeModel):
    requests: dict[str, str]
    limits: dict[str, str]

    @model_validator(mode="after")
    def quantities(self) -> Resources:
        for amount in [*self.requests.values(), *self.limits.values()]:
            if not QUANTITY.match(amount):
                raise ValueError(f"{amount!r} is not a Kubernetes quantity")
        return self


class VolumeMount(KubeModel):
    name: str
    mountPath: str


class Container(KubeModel):
    name: str = Field(pattern=DNS_1123)
    image: str
    resources: Resources
    securityContext: dict = {}
    env: list[EnvVar] = []
    volumeMounts: list[VolumeMount] = []


class Volume(KubeModel):
    name: str


class PodSpec(KubeModel):
    containers: list[Container] = Field(min_length=1)
    volumes: list[Volume] = []
    hostUsers: bool = True
    securityContext: dict = {}


class PodTemplate(KubeModel):
    spec: PodSpec


class HeadGroupSpec(KubeModel):
    # KubeRay's rayStartParams is map[string]string: a bare number is rejected by the API server.
    rayStartParams: dict[str, str]
    template: PodTemplate


class WorkerGroupSpec(HeadGroupSpec):
    groupName: str = Field(pattern=DNS_1123)
    replicas: int = Field(ge=0)
    minReplicas: int = Field(ge=0)
    maxReplicas: int = Field(ge=1)


class RayClusterSpec(KubeModel):
    rayVersion: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    headGroupSpec: HeadGroupSpec
    workerGroupSpecs: list[WorkerGroupSpec] = Field(min_length=1)


class RayCluster(KubeModel):
    apiVersion: Literal["ray.io/v1"]
    kind: Literal["RayCluster"]
    metadata: Metadata
    spec: RayClusterSpec


class RayJobSpec(KubeModel):
    entrypoint: str
    clusterSelector: dict[str, str]
    submissionMode: Literal["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"] = "K8sJobMode"
    runtimeEnvYAML: str = ""
    submitterPodTemplate: PodTemplate | None = None


class RayJob(KubeModel):
    apiVersion: Literal["ray.io/v1"]
    kind: Literal["RayJob"]
    metadata: Metadata
    spec: RayJobSpec


def cluster() -> RayCluster:
    return RayCluster.model_validate(load_yaml("kuberay/raycluster.yaml"))


def job() -> RayJob:
    return RayJob.model_validate(load_yaml("kuberay/rayjob.yaml"))


def gpu_problems(group: WorkerGroupSpec, gpus_per_node: int) -> list[str]:
    """Where the Kubernetes GPU request, the Ray GPU count and the replica bounds disagree."""
    container = group.template.spec.containers[0]
    problems = []
    for side in ("requests", "limits"):
        if getattr(container.resources, side).get("nvidia.com/gpu") != str(gpus_per_node):
            problems.append(f"{group.groupName}: {side} nvidia.com/gpu is not {gpus_per_node}")
    if group.rayStartParams.get("num-gpus") != str(gpus_per_node):
        problems.append(f"{group.groupName}: Ray is not told about {gpus_per_node} GPUs")
    if not group.minReplicas <= group.replicas <= group.maxReplicas:
        problems.append(f"{group.groupName}: replicas outside [minReplicas, maxReplicas]")
    return problems


def pod_specs(raycluster: RayCluster) -> list[PodSpec]:
    return [raycluster.spec.headGroupSpec.template.spec] + [
        g.template.spec for g in raycluster.spec.workerGroupSpecs
    ]


def test_the_models_reject_what_the_api_server_would() -> None:
    manifest = load_yaml("kuberay/raycluster.yaml")
    manifest["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-gpus"] = 8  # an int, not a string
    with pytest.raises(ValidationError, match="num-gpus"):
        RayCluster.model_validate(manifest)
    manifest = load_yaml("kuberay/raycluster.yaml")
    manifest["apiVersion"] = "ray.io/v1alpha1"
    with pytest.raises(ValidationError, match="apiVersion"):
        RayCluster.model_validate(manifest)


def test_the_gpu_check_catches_a_mismatch() -> None:
    group = cluster().spec.workerGroupSpecs[0].model_copy(deep=True)
    group.rayStartParams["num-gpus"] = "4"
    group.replicas = group.maxReplicas + 1
    assert len(gpu_problems(group, 8)) == 2


def test_the_cluster_has_a_cpu_head_and_8_gpu_workers() -> None:
    raycluster = cluster()
    assert raycluster.spec.headGroupSpec.rayStartParams["num-gpus"] == "0"
    assert raycluster.spec.headGroupSpec.rayStartParams["dashboard-host"] == "0.0.0.0"
    for group in raycluster.spec.workerGroupSpecs:
        assert gpu_problems(group, 8) == []


def test_every_pod_reads_the_endpoints_from_the_secret_and_mounts_declared_volumes() -> None:
    for spec in pod_specs(cluster()):
        declared = {volume.name for volume in spec.volumes}
        for container in spec.containers:
            from_secret = {
                var.name
                for var in container.env
                if var.valueFrom and var.valueFrom.secretKeyRef.name == SECRET_NAME
            }
            assert ENDPOINTS_FROM_SECRET <= from_secret, container.name
            assert {mount.name for mount in container.volumeMounts} <= declared, container.name
            assert container.resources.requests == container.resources.limits  # guaranteed QoS


def test_the_job_targets_this_cluster_and_runs_rl_on_the_paper_profile() -> None:
    raycluster, rayjob = cluster(), job()
    assert rayjob.spec.clusterSelector == {"ray.io/cluster": raycluster.metadata.name}
    assert rayjob.metadata.namespace == raycluster.metadata.namespace
    assert isinstance(yaml.safe_load(rayjob.spec.runtimeEnvYAML), dict)
    words = shlex.split(rayjob.spec.entrypoint)
    assert words[:3] == ["codedance", "train", "rl"]
    options = dict(zip(words[3::2], words[4::2], strict=True))
    paper = load_profile(options["--config"])
    # The data lives in the paper profile's bucket; the model and run directory on the workers' mounts.
    assert options["--data"].startswith(paper.store.root.split("/store")[0] + "/")
    worker = raycluster.spec.workerGroupSpecs[0].template.spec.containers[0]
    mounts = [mount.mountPath for mount in worker.volumeMounts]
    for path in (options["--model"], options["--out"], paper.model.path):
        assert any(path.startswith(mount + "/") for mount in mounts), f"{path} is on no worker mount"


def sandbox_problems(spec: PodSpec) -> list[str]:
    """What keeps the code sandbox (bubblewrap as uid 1000 in user namespaces) from starting in a
    pod, or gives the pod more than it needs; see infra/README.md, 'The code sandbox'."""
    problems = []
    pod = spec.securityContext
    if spec.hostUsers:
        problems.append("hostUsers is not false (procMount Unmasked needs a pod user namespace)")
    if pod.get("runAsUser") != 1000 or not pod.get("runAsNonRoot"):
        problems.append("the pod does not run as the image's non-root uid 1000")
    for profile in ("seccompProfile", "appArmorProfile"):
        if pod.get(profile, {}).get("type") != "Unconfined":
            problems.append(f"{profile}: the runtime default refuses unshare or mount")
    for container in spec.containers:
        context = container.securityContext
        if context.get("procMount") != "Unmasked":
            problems.append(f"{container.name}: a masked /proc stops a new pid namespace mounting its own")
        if context.get("allowPrivilegeEscalation") is not False or context.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{container.name}: privilege escalation or capabilities left on")
        if context.get("privileged") or context.get("capabilities", {}).get("add"):
            problems.append(f"{container.name}: privileged or added capabilities (the sandbox needs none)")
    return problems


def test_the_gpu_workers_let_the_sandbox_run_without_root() -> None:
    for group in cluster().spec.workerGroupSpecs:
        assert sandbox_problems(group.template.spec) == [], group.groupName


def test_the_sandbox_check_catches_a_default_pod() -> None:
    spec = cluster().spec.workerGroupSpecs[0].template.spec.model_copy(deep=True)
    spec.hostUsers = True
    spec.securityContext = {"runAsUser": 1000, "runAsNonRoot": True}
    spec.containers[0].securityContext = {"privileged": True}
    assert len(sandbox_problems(spec)) == 6
