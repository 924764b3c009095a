"""docker-compose.yml read as data: what the compose backend relies on (the real runs are in tests/compose)."""

from __future__ import annotations

import base64
import json
import re

import pytest
import yaml

from lab.config import Settings
from lab.stack import compose


pytestmark = pytest.mark.unit

COMPOSE = yaml.safe_load(compose.COMPOSE_FILE.read_text())
SERVICES_YML = COMPOSE["services"]
PROXY_CONFIG = json.loads((compose.COMPOSE_FILE.parent / "toxiproxy.json").read_text())
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?(?::\?[^}]*)?\}")


def with_defaults(text: str) -> str:
    """``${VAR:-default}`` as docker compose reads it with VAR unset."""
    return VARIABLE.sub(lambda m: m.group(2) or "", text)


def test_images_default_to_the_pinned_official_ones_and_each_is_overridable():
    by_component = {"postgres": "postgres", "kafka": "kafka", "proxy": "toxiproxy"}
    for component, service in by_component.items():
        image = SERVICES_YML[service]["image"]
        assert VARIABLE.fullmatch(image).group(1) == compose.IMAGE_VARIABLES[component]
        assert with_defaults(image) == compose.DEFAULT_IMAGES[component]
    assert all(":" in i and not i.endswith(":latest") for i in compose.DEFAULT_IMAGES.values())
    assert compose.images({"LAB_KAFKA_IMAGE": "chaoslab/kafka:dev"})["kafka"] == "chaoslab/kafka:dev"


def test_host_ports_are_the_settings_ports_and_bind_loopback_only():
    defaults = Settings()
    published = [p for svc in SERVICES_YML.values() for p in svc.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published)
    toxiproxy = [with_defaults(p) for p in SERVICES_YML["toxiproxy"]["ports"]]
    assert f"127.0.0.1:{defaults.proxy_api_port}:8474" in toxiproxy
    assert f"127.0.0.1:{defaults.pg_proxy_port}:15432" in toxiproxy
    assert f"127.0.0.1:{defaults.kafka_proxy_port}:19092" in toxiproxy
    variables = {VARIABLE.search(p).group(1) for svc in SERVICES_YML.values() for p in svc.get("ports", [])}
    assert variables <= set(Settings().to_env()), "every published port follows a LAB_* setting"
    assert "kafka" not in {s for s, svc in SERVICES_YML.items() if svc.get("ports")}, \
        "the broker must only be reachable through the proxy"


def test_kafka_advertises_the_proxied_address_and_has_a_separate_controller_listener():
    env = SERVICES_YML["kafka"]["environment"]
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    assert advertised["CLIENT"] == "127.0.0.1:${LAB_KAFKA_PROXY_PORT:-19092}"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER" and "CONTROLLER" not in advertised
    kafka_proxy = next(p for p in PROXY_CONFIG if p["name"] == "kafka")
    assert kafka_proxy["listen"].endswith(":19092")
    assert kafka_proxy["upstream"] == "kafka:" + listeners["CLIENT"].lstrip(":")
    pg_proxy = next(p for p in PROXY_CONFIG if p["name"] == "postgres")
    assert pg_proxy["upstream"] == "postgres:5432" and pg_proxy["listen"].endswith(":15432")


def test_cluster_id_is_what_kafka_storage_random_uuid_prints():
    cluster_id = SERVICES_YML["kafka"]["environment"]["CLUSTER_ID"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_postgres_password_comes_from_the_lab_and_is_required():
    password = SERVICES_YML["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${LAB_PG_PASSWORD:?"), "no default password may be baked into the file"
    assert compose.compose_env(Settings(), {})["LAB_PG_PASSWORD"] == Settings().pg_password


def test_every_server_has_a_healthcheck_and_the_proxy_waits_for_them():
    for name in ("postgres", "kafka", "toxiproxy"):
        assert SERVICES_YML[name]["healthcheck"]["test"], name
    depends = SERVICES_YML["toxiproxy"]["depends_on"]
    assert depends == {"postgres": {"condition": "service_healthy"}, "kafka": {"condition": "service_healthy"}}
    assert set(SERVICES_YML) == set(compose.SERVICES.values()), "no service the backend does not manage"
    assert all(svc["labels"]["com.chaoslab.project"] == "chaoslab" for svc in SERVICES_YML.values())


def test_compose_commands_name_the_project_and_file():
    up = compose.up_command(30)
    assert up[:6] == ["docker", "compose", "-f", str(compose.COMPOSE_FILE), "-p", "chaoslab"]
    assert "--wait" in up and up[-3:] == ["toxiproxy", "postgres", "kafka"]
    assert compose.down_command(purge=True)[-1] == "--volumes"
    assert "--volumes" not in compose.down_command(purge=False)


def test_a_compose_project_of_its_own_is_named_on_every_command():
    assert compose.up_command(30, "chaoslab-abc")[4:6] == ["-p", "chaoslab-abc"]
    assert compose.down_command(True, "chaoslab-abc")[4:6] == ["-p", "chaoslab-abc"]


@pytest.mark.parametrize("bad", ["Chaoslab", "-lab", "lab space", "lab/x"])
def test_a_compose_project_name_compose_would_refuse_is_a_config_error(bad):
    from lab.config import Settings
    from lab.errors import ConfigError

    with pytest.raises(ConfigError, match="LAB_COMPOSE_PROJECT"):
        Settings.from_env({"LAB_COMPOSE_PROJECT": bad})
    assert Settings.from_env({"LAB_COMPOSE_PROJECT": "chaoslab-1_a"}).to_env()["LAB_COMPOSE_PROJECT"] == "chaoslab-1_a"
