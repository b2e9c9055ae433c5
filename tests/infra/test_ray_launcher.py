"""The Ray cluster launcher YAML, validated by Ray itself: its JSON schema, then the defaults
`ray up` fills in and the checks it runs on the result."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.infra.infra_files import load_yaml

RAY_SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def test_the_schema_rejects_a_misspelled_section() -> None:
    config = load_yaml("ray/cluster.yaml")
    config["setup_comands"] = config.pop("setup_commands")
    with pytest.raises(jsonschema.ValidationError, match="setup_comands"):
        jsonschema.validate(config, RAY_SCHEMA)


def test_the_launcher_config_is_what_ray_up_accepts() -> None:
    config = load_yaml("ray/cluster.yaml")
    jsonschema.validate(config, RAY_SCHEMA)
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    # A fixed on-prem fleet: every listed worker is started.
    assert prepared["available_node_types"]["local.cluster.node"]["min_workers"] == len(
        config["provider"]["worker_ips"]
    )


def test_the_nodes_get_the_worker_image_requirements_and_start_ray() -> None:
    config = load_yaml("ray/cluster.yaml")
    assert config["provider"]["type"] == "local"
    assert config["provider"]["head_ip"] == "HEAD_NODE_IP"  # a placeholder the README tells you to fill
    setup = " ".join(config["setup_commands"])
    assert setup.count("-c locks/gpu-worker.txt") == setup.count("pip install") - 1  # all but pip's own upgrade
    assert '".[train,gpu,worker]"' in setup and "download.pytorch.org/whl/cu" in setup
    head = " ".join(config["head_start_ray_commands"])
    assert "ray start --head --port=6379" in head and "--dashboard-host=0.0.0.0" in head
    worker = " ".join(config["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6379" in worker and "--num-gpus=8" in worker
