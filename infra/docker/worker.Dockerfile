# syntax=docker/dockerfile:1.7
# The GPU worker image: what every Ray worker node of the `paper` profile runs.
#
# Why a separate image from the orchestrator: vLLM pins FastAPI below what Prefect needs, so the
# GPU side (CUDA torch, vLLM, DeepSpeed) and the orchestrator side (Prefect, MLflow server) cannot
# share one environment. The worker imports only `codedance_core` (no Prefect; MLflow through
# mlflow-skinny, the client without the server); Ray must be the same version
# as the orchestrator's Ray client (RAY_VERSION here, in orchestrator.Dockerfile and the
# `rayVersion` of infra/kuberay/raycluster.yaml; tests/infra checks they agree).
#
# Build from the repository root (the build context must hold pyproject.toml and locks/gpu-worker.txt):
#   docker build -f infra/docker/worker.Dockerfile -t ghcr.io/codedance/codedance-worker:0.1.0 .
# The tag is the project version in pyproject.toml.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-devel-ubuntu22.04
FROM ${CUDA_IMAGE}

ARG PYTHON_VERSION=3.11
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG RAY_VERSION=2.60.0
ARG VLLM_VERSION=0.32.0
ARG USER_UID=1000

# The devel base (nvcc) is deliberate: DeepSpeed JIT-compiles its fused ops on first use.
# deadsnakes gives Python 3.11 on Ubuntu 22.04, the version the project is tested with.
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common ca-certificates curl git \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        python${PYTHON_VERSION} python${PYTHON_VERSION}-venv python${PYTHON_VERSION}-dev \
        build-essential libaio-dev libgl1 libglib2.0-0 bubblewrap tini \
    && rm -rf /var/lib/apt/lists/* \
    && test ! -u "$(command -v bwrap)"
# The sandbox (codedance_core/sandbox) runs model-written code inside bubblewrap as uid 1000, in
# unprivileged user namespaces (isolation 'bwrap' without root). bwrap must NOT be setuid: a
# setuid bwrap refuses the capabilities the sandbox's template keeps inside its namespace unless
# the caller is root. The pod must allow user namespaces, mount and a fresh /proc: see the
# securityContext of the GPU workers in infra/kuberay/raycluster.yaml and infra/README.md.

# Non-root, uid 1000 and named `ray`: what KubeRay pods and the Ray launcher expect by default.
RUN useradd --uid ${USER_UID} --create-home --shell /bin/bash ray \
    && python${PYTHON_VERSION} -m venv /opt/venv \
    && chown -R ray:ray /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    DS_BUILD_OPS=0 \
    RAY_USAGE_STATS_ENABLED=0

USER ray
WORKDIR /home/ray/codedance

# Dependencies first (a code change does not reinstall them). The CUDA build of torch comes from
# the PyTorch index; the lock pins its version (2.13.0 matches 2.13.0+cu128), so the project
# install below keeps it instead of pulling another build. locks/gpu-worker.txt pins the whole
# resolved stack (`make lock`), so a rebuild installs what was tested.
COPY --chown=ray:ray pyproject.toml README.md ./
COPY --chown=ray:ray locks/gpu-worker.txt ./locks/
RUN pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir -c locks/gpu-worker.txt --index-url ${TORCH_INDEX_URL} torch

COPY --chown=ray:ray codedance_core ./codedance_core
COPY --chown=ray:ray flows ./flows
COPY --chown=ray:ray tasks ./tasks
COPY --chown=ray:ray deployments ./deployments
COPY --chown=ray:ray configs ./configs
# One resolver call for the project, Ray and vLLM, so the pins hold together. The `worker` extra
# is what worker code needs besides the models: MLflow's client (no server) and the S3 store.
# tests/infra/test_worker_image.py checks this line installs everything worker code imports.
RUN pip install --no-cache-dir -c locks/gpu-worker.txt --extra-index-url ${TORCH_INDEX_URL} \
        "ray[default]==${RAY_VERSION}" "vllm==${VLLM_VERSION}" ".[train,gpu,worker]" \
    && (python -m compileall -q /opt/venv/lib > /dev/null || true)

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["bash"]
