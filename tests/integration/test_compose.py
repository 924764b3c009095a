"""The compose backend: docker-compose.yml validated here; run for real where a Docker engine answers."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from lab.config import Settings
from lab.stack.backend import detect
from lab.stack.compose import COMPOSE_FILE, IMAGES, SERVICES

from ..labenv import ROOT

COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES_YML = COMPOSE["services"]
PROXY_CONFIG = json.loads((ROOT / "compose" / "toxiproxy.json").read_text())


@pytest.mark.unit
def test_images_are_pinned_official_ones():
    images = {name: svc["image"] for name, svc in SERVICES_YML.items() if "image" in svc}
    assert images == {"postgres": "postgres:16", "kafka": "apache/kafka:3.9.0",
                      "toxiproxy": "ghcr.io/shopify/toxiproxy:2.12.0"}
    assert sorted(images.values()) == sorted(IMAGES)
    assert all(":" in image and not image.endswith(":latest") for image in images.values())


@pytest.mark.unit
def test_host_ports_match_the_local_backend_and_bind_loopback_only():
    defaults = Settings()
    published = [p for svc in SERVICES_YML.values() for p in svc.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published)
    toxiproxy = SERVICES_YML["toxiproxy"]["ports"]
    assert f"127.0.0.1:{defaults.proxy_api_port}:8474" in toxiproxy
    assert f"127.0.0.1:{defaults.pg_proxy_port}:{defaults.pg_proxy_port}" in toxiproxy
    assert f"127.0.0.1:{defaults.kafka_proxy_port}:{defaults.kafka_proxy_port}" in toxiproxy
    assert "kafka" not in {s for s, svc in SERVICES_YML.items() if svc.get("ports")}, \
        "the broker must only be reachable through the proxy"


@pytest.mark.unit
def test_kafka_advertises_the_toxiproxy_address_and_has_a_separate_controller_listener():
    env = SERVICES_YML["kafka"]["environment"]
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    assert advertised["CLIENT"] == f"127.0.0.1:{Settings().kafka_proxy_port}"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER" and "CONTROLLER" not in advertised
    kafka_proxy = next(p for p in PROXY_CONFIG if p["name"] == "kafka")
    assert kafka_proxy["listen"].endswith(f":{Settings().kafka_proxy_port}")
    assert kafka_proxy["upstream"] == "kafka:" + listeners["CLIENT"].lstrip(":")
    pg_proxy = next(p for p in PROXY_CONFIG if p["name"] == "postgres")
    assert pg_proxy["upstream"] == "postgres:5432" and pg_proxy["listen"].endswith(f":{Settings().pg_proxy_port}")


@pytest.mark.unit
def test_every_server_has_a_healthcheck_and_the_proxy_waits_for_them():
    for name in ("postgres", "kafka", "toxiproxy"):
        assert SERVICES_YML[name]["healthcheck"]["test"], name
    depends = SERVICES_YML["toxiproxy"]["depends_on"]
    assert depends == {"postgres": {"condition": "service_healthy"}, "kafka": {"condition": "service_healthy"}}
    assert set(SERVICES.values()) <= set(SERVICES_YML)


@pytest.mark.unit
def test_runner_shares_the_proxy_network_namespace_and_builds_from_the_dockerfile():
    runner = SERVICES_YML["lab-runner"]
    assert runner["network_mode"] == "service:toxiproxy" and runner["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M) and 'ENTRYPOINT ["python", "-m", "lab"]' in dockerfile


def _engine() -> tuple[str, str]:
    return detect(Settings(backend="auto"))


@pytest.mark.integration
def test_compose_backend_for_real_where_docker_answers(tmp_path):
    backend, why = _engine()
    if backend != "compose":
        pytest.skip(f"compose backend not run: {why}")
    config = subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stderr
    from ..labenv import LabEnv

    env = LabEnv(tmp_path / "state")
    env.env.update({"LAB_BACKEND": "compose", "LAB_PROXY_API_PORT": "8474", "LAB_PG_PROXY_PORT": "15432",
                    "LAB_KAFKA_PROXY_PORT": "19092"})
    try:
        env.run("up", timeout=600)
        report = env.status()
        assert all(c["running"] for c in report["components"].values())
    finally:
        env.run("down", "--purge", check=False, timeout=300)
