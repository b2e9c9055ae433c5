"""The compose file, checked as `docker compose config` would (its CLI plugin is not installable
here without Docker's own repository): references resolve, every server has a healthcheck, every
variable it reads is in .env.example, and the services are wired to each other's names."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import yaml

from tests.infra.infra_files import INFRA, image_tag

COMPOSE_FILE = INFRA / "compose" / "docker-compose.yaml"
ENV_EXAMPLE = INFRA / "compose" / ".env.example"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}; `$${...}` is a literal `$`.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def read_env_file(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution; a `:?` variable that is unset or empty is an error."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match[1], match[2], match[3]
        value = env.get(name)
        if operator in (":-", ":?") and not value or operator in ("-", "?") and value is None:
            if operator and operator.endswith("?"):
                raise ValueError(f"{name}: {argument}")
            return argument or ""
        return value or ""

    return VARIABLE.sub(substitute, text).replace("$$", "$")


def compose_problems(compose: dict[str, Any]) -> list[str]:
    """Broken references and missing health information; empty when the file is sound."""
    problems: list[str] = []
    services: dict[str, Any] = compose.get("services", {})
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        for target, condition in depends_on.items() if isinstance(depends_on, dict) else []:
            if target not in services:
                problems.append(f"{name} depends on {target}, which is not a service")
                continue
            wanted = condition.get("condition")
            if wanted == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(f"{name} waits for {target} to be healthy, but it has no healthcheck")
            if wanted == "service_completed_successfully" and services[target].get("restart") != "no":
                problems.append(f"{name} waits for {target} to complete, but {target} restarts")
        one_shot = service.get("restart") == "no"
        if not one_shot and "healthcheck" not in service:
            problems.append(f"{name} is long-running and has no healthcheck")
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
            if source and not source.startswith((".", "/", "~")) and source not in declared_volumes:
                problems.append(f"{name} mounts the volume {source}, which is not declared")
        image = service.get("image", "")
        if image_tag(image) in (None, "latest"):
            problems.append(f"{name} uses the unpinned image {image!r}")
    return problems


def resolved_compose() -> dict[str, Any]:
    env = read_env_file(ENV_EXAMPLE.read_text())
    return yaml.safe_load(interpolate(COMPOSE_FILE.read_text(), env))


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $${SET}", env) == "x d d  ${SET}"
    try:
        interpolate("${EMPTY:?give it a value}", env)
    except ValueError as error:
        assert "give it a value" in str(error)
    else:
        raise AssertionError("a required variable that is empty must be an error")


def test_the_checks_catch_dangling_references_and_missing_healthchecks() -> None:
    broken = {
        "services": {
            "app": {"image": "app", "depends_on": {"db": {"condition": "service_healthy"}, "ghost": {}}},
            "db": {"image": "postgres:16", "volumes": ["undeclared:/data"]},
        }
    }
    problems = " | ".join(compose_problems(broken))
    assert "ghost, which is not a service" in problems
    assert "waits for db to be healthy" in problems
    assert "unpinned image 'app'" in problems
    assert "undeclared, which is not declared" in problems


def test_the_compose_file_is_sound_with_the_example_environment() -> None:
    compose = resolved_compose()
    assert compose_problems(compose) == []
    assert {"prefect-server", "prefect-db", "mlflow-server", "mlflow-db", "minio", "create-bucket"} <= set(
        compose["services"]
    )


def test_every_variable_read_is_in_env_example_and_every_listed_one_is_read() -> None:
    read = {match[1] for match in VARIABLE.finditer(COMPOSE_FILE.read_text())}
    listed = set(read_env_file(ENV_EXAMPLE.read_text()))
    assert read - listed == set(), "variables the compose file reads but .env.example does not list"
    assert listed - read == set(), "variables .env.example lists but the compose file never reads"


def test_the_services_are_wired_to_each_other() -> None:
    services = resolved_compose()["services"]
    env = read_env_file(ENV_EXAMPLE.read_text())
    worker = services["prefect-worker"]["environment"]
    assert worker["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker["MLFLOW_TRACKING_URI"] == "http://mlflow-server:5000"
    assert (
        worker["AWS_ENDPOINT_URL"]
        == "http://minio:9000"
        == services["mlflow-server"]["environment"]["MLFLOW_S3_ENDPOINT_URL"]
    )
    assert (
        "@prefect-db:5432/"
        in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    mlflow_command = " ".join(services["mlflow-server"]["command"])
    assert "@mlflow-db:5432/mlflow" in mlflow_command
    assert f"--artifacts-destination=s3://{env['S3_BUCKET']}/mlflow" in mlflow_command
    assert services["create-bucket"]["environment"]["S3_BUCKET"] == env["S3_BUCKET"]
    assert "mb --ignore-existing" in services["create-bucket"]["command"][0]


def test_docker_compose_accepts_the_file_when_its_plugin_is_present() -> None:
    """Docker's own validation, where the compose plugin exists (it needs no engine for `config`)."""
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode != 0
    ):
        # The structural checks above stand in for it; nothing to add on this machine.
        return
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config", "--quiet"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
