# syntax=docker/dockerfile:1.7
# The orchestrator image (CPU): Prefect server and workers, the MLflow server, the Ray client.
#
# Runs the flows (`flows/`, `tasks/`) and the servers of infra/compose/docker-compose.yaml; the
# heavy stages leave it for the GPU workers through RAY_ADDRESS. No torch, no vLLM here: vLLM
# pins FastAPI below what Prefect needs (see shared architecture notes), and the orchestrator
# never runs a model. Ray must match the workers' version (RAY_VERSION, checked by tests/infra).
#
# Build from the repository root:
#   docker build -f infra/docker/orchestrator.Dockerfile -t ghcr.io/codedance/codedance-orchestrator:0.1.0 .
FROM python:3.11.11-slim-bookworm

ARG RAY_VERSION=2.60.0
ARG USER_UID=1000

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl git tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --uid ${USER_UID} --create-home --shell /bin/bash codedance \
    && python -m venv /opt/venv \
    && chown -R codedance:codedance /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    RAY_USAGE_STATS_ENABLED=0

USER codedance
WORKDIR /home/codedance/codedance

COPY --chown=codedance:codedance pyproject.toml README.md ./
COPY --chown=codedance:codedance locks/cpu.txt ./locks/
COPY --chown=codedance:codedance codedance_core ./codedance_core
COPY --chown=codedance:codedance flows ./flows
COPY --chown=codedance:codedance tasks ./tasks
COPY --chown=codedance:codedance deployments ./deployments
COPY --chown=codedance:codedance configs ./configs
# psycopg2 (MLflow's Postgres backend store) and boto3 (MLflow's S3 artifact store) are what the
# servers in the compose file need beyond the `orchestrator` extra; one resolver call for all.
RUN pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir -c locks/cpu.txt \
        ".[orchestrator]" "ray[default]==${RAY_VERSION}" psycopg2-binary boto3 \
    && (python -m compileall -q /opt/venv/lib > /dev/null || true)

EXPOSE 4200 5000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["prefect", "version"]
