"""Pure logic of the stack layer: settings, compose commands, Kafka metadata parsing."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lab.config import Settings
from lab.errors import ConfigError, LabError, PortInUse, StackError
from lab.stack import compose, health

pytestmark = pytest.mark.unit


def test_settings_defaults_match_the_design():
    s = Settings.from_env({"LAB_PG_PASSWORD": "pw"})
    assert (s.proxy_api_port, s.pg_proxy_port, s.kafka_proxy_port) == (8474, 15432, 19092)
    assert s.pg_dsn == "postgresql://lab:pw@127.0.0.1:15432/lab" and s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.pg_direct_dsn == "postgresql://lab:pw@127.0.0.1:25432/lab"
    assert "pw" not in repr(s) and "pw" not in s.pg_dsn_masked()


@pytest.mark.security
def test_the_postgres_password_is_generated_once_per_state_dir_and_private(tmp_path):
    first = Settings.from_env({"LAB_STATE_DIR": str(tmp_path / "a")})
    password = first.pg_password
    assert len(password) >= 24 and password != "lab"
    assert Settings.from_env({"LAB_STATE_DIR": str(tmp_path / "a")}).pg_password == password
    assert Settings.from_env({"LAB_STATE_DIR": str(tmp_path / "b")}).pg_password != password
    assert (first.pg_password_file.stat().st_mode & 0o777) == 0o600
    assert (first.state_path.stat().st_mode & 0o777) == 0o700


@pytest.mark.security
def test_lab_pg_password_overrides_and_is_quoted_in_the_dsn(tmp_path):
    s = Settings.from_env({"LAB_STATE_DIR": str(tmp_path), "LAB_PG_PASSWORD": "p@ss/w:rd"})
    assert s.pg_password == "p@ss/w:rd" and not s.pg_password_file.exists()
    assert s.to_env()["LAB_PG_PASSWORD"] == "p@ss/w:rd"
    assert s.pg_dsn == "postgresql://lab:p%40ss%2Fw%3Ard@127.0.0.1:15432/lab"
    with pytest.raises(ConfigError, match="LAB_PG_PASSWORD"):
        Settings.from_env({"LAB_PG_PASSWORD": "a\nb"})


def test_lab_os_user_and_its_older_name(tmp_path):
    assert Settings.from_env({"LAB_PG_OS_USER": "old"}).os_user == "old"
    assert Settings.from_env({"LAB_OS_USER": "new", "LAB_PG_OS_USER": "old"}).os_user == "new"
    assert Settings.from_env({}).os_user == "chaoslab"


def test_settings_are_read_from_the_environment_given():
    s = Settings.from_env({"LAB_PG_PROXY_PORT": "1234", "LAB_STATE_DIR": "/x", "LAB_BACKEND": "local",
                           "LAB_START_TIMEOUT_S": "2.5"})
    assert s.pg_proxy_port == 1234 and s.state_dir == Path("/x") and s.backend == "local"
    assert s.start_timeout_s == 2.5


@pytest.mark.parametrize("env, message", [
    ({"LAB_BACKEND": "k8s"}, "unknown backend 'k8s'"),
    ({"LAB_PG_PORT": "0"}, "LAB_PG_PORT='0' is not a port"),
    ({"LAB_KAFKA_PORT": "abc"}, "LAB_KAFKA_PORT='abc'"),
    ({"LAB_PG_PORT": "19092"}, "LAB_PG_PORT and LAB_KAFKA_PROXY_PORT are both 19092"),
    ({"LAB_START_TIMEOUT_S": "-1"}, "LAB_START_TIMEOUT_S='-1' must be a positive"),
])
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_errors_share_one_root_and_carry_exit_codes():
    assert issubclass(PortInUse, StackError) and issubclass(StackError, LabError)
    assert ConfigError("x").exit_code == 2 and StackError("x").exit_code == 3
    assert "port 5 on 127.0.0.1 is already in use by pid 1 (init)" in str(PortInUse(5, "pid 1 (init)"))



def test_kafka_metadata_brokers_are_parsed():
    def broker(node: int, host: str, port: int) -> bytes:
        return struct.pack(">ih", node, len(host)) + host.encode() + struct.pack(">ih", port, -1)

    body = struct.pack(">ii", 7, 2) + broker(1, "127.0.0.1", 19092) + broker(2, "kafka", 9092)
    assert health.parse_brokers(body) == [(1, "127.0.0.1", 19092), (2, "kafka", 9092)]


def test_proxy_config_routes_clients_to_the_real_servers():
    import json

    config = json.loads(health.proxy_config(Settings(pg_proxy_port=15432, pg_port=25432, kafka_proxy_port=19092,
                                                       kafka_port=29092)))
    assert config == [
        {"name": "postgres", "listen": "127.0.0.1:15432", "upstream": "127.0.0.1:25432"},
        {"name": "kafka", "listen": "127.0.0.1:19092", "upstream": "127.0.0.1:29092"},
    ]
