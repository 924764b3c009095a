"""The server as users start it (``python -m lab.proxy``), driven by toxiproxy-python unchanged."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from lab.proxy.cli import Options, UsageError, parse_args

from .helpers import free_port, wait_until

pytestmark = pytest.mark.e2e


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/version", timeout=1).status_code == 200
    except requests.RequestException:
        return False


class Running:
    def __init__(self, *flags: str, port: int | None = None) -> None:
        self.port = port or free_port()
        args = [sys.executable, "-m", "lab.proxy", "-host", "127.0.0.1", "-port", str(self.port), *flags]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> "Running":
        if not wait_until(lambda: _answers(self.port) or self.proc.poll() is not None, timeout=15):
            self.proc.kill()
            raise AssertionError("lab.proxy did not start")
        assert self.proc.poll() is None, self.proc.communicate()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _echo_server() -> tuple[socket.socket, int]:
    import threading

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_pump, args=(conn,), daemon=True).start()

    def _pump(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def _rtt(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.monotonic()
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"
        return time.monotonic() - started


def test_toxiproxy_python_drives_our_server_unchanged():
    from toxiproxy.api import APIConsumer
    from toxiproxy.server import Toxiproxy

    listener, echo_port = _echo_server()
    with Running() as server:
        APIConsumer.host, APIConsumer.port = "127.0.0.1", server.port
        toxiproxy = Toxiproxy()
        assert toxiproxy.running()
        assert json.loads(toxiproxy.version()) == {"version": "2.12.0"}
        proxy_port = free_port()
        proxy = toxiproxy.create(upstream=f"127.0.0.1:{echo_port}", name="echo", listen=f"127.0.0.1:{proxy_port}")
        assert proxy.listen == f"127.0.0.1:{proxy_port}"
        assert _rtt(proxy_port) < 0.05
        proxy.add_toxic(type="latency", attributes={"latency": 150})
        assert set(proxy.toxics()) == {"latency_downstream"}
        assert 0.15 <= _rtt(proxy_port) < 0.5
        proxy.destroy_toxic("latency_downstream")
        assert _rtt(proxy_port) < 0.05
        with proxy.down():
            with pytest.raises(ConnectionRefusedError):
                _rtt(proxy_port)
        assert _rtt(proxy_port) < 0.05
        populated = toxiproxy.populate([{"name": "more", "upstream": f"127.0.0.1:{echo_port}",
                                         "listen": f"127.0.0.1:{free_port()}"}])
        assert [p.name for p in populated] == ["more"]
        assert toxiproxy.reset()
        toxiproxy.destroy_all()
        assert toxiproxy.proxies() == {}
    listener.close()


def test_flags_in_both_forms_and_metrics():
    listener, echo_port = _echo_server()
    port = free_port()
    with Running("--proxy-metrics", "-runtime-metrics=true", "--seed=3", port=port) as server:
        body = {"name": "m", "listen": f"127.0.0.1:{free_port()}", "upstream": f"127.0.0.1:{echo_port}"}
        listen = requests.post(f"http://127.0.0.1:{server.port}/proxies", json=body, timeout=5).json()["listen"]
        _rtt(int(listen.rsplit(":", 1)[1]))
        metrics = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert metrics.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        labels = f'listener="{listen}",proxy="m",upstream="127.0.0.1:{echo_port}"'
        assert f'toxiproxy_proxy_received_bytes_total{{direction="upstream",{labels}}} 4' in metrics.text
        assert f'toxiproxy_proxy_sent_bytes_total{{direction="downstream",{labels}}} 4' in metrics.text
        assert "process_resident_memory_bytes" in metrics.text
    listener.close()


def test_start_up_objects_are_frozen_out_of_collections():
    """A full collection over the start-up heap is a ~9 ms pause in the data path; the CLI freezes it."""
    with Running("-runtime-metrics", port=free_port()) as server:
        metrics = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    frozen = [line for line in metrics.splitlines() if line.startswith("python_gc_frozen_objects ")]
    assert frozen, metrics
    assert int(frozen[0].split()[1]) > 5000  # the modules, classes and tables loaded at start


def test_metrics_route_is_absent_without_a_flag():
    with Running() as server:
        assert requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).status_code == 404


def test_config_file_populates_at_start(tmp_path: Path):
    listen = f"127.0.0.1:{free_port()}"
    config = tmp_path / "toxiproxy.json"
    config.write_text(json.dumps([{"name": "pg", "listen": listen, "upstream": "127.0.0.1:5432"}]))
    with Running("-config", str(config)) as server:
        proxies = requests.get(f"http://127.0.0.1:{server.port}/proxies", timeout=5).json()
        assert proxies["pg"]["listen"] == listen and proxies["pg"]["enabled"] is True


def test_a_bad_config_file_is_reported_and_the_server_still_runs(tmp_path: Path):
    missing = tmp_path / "nope.json"
    with Running("-config", str(missing)) as server:
        assert _answers(server.port)
    assert str(missing) in server.proc.stderr.read()


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "lab.proxy", "-version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "2.12.0" in out.stdout


def test_unknown_flag_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "lab.proxy", "-bogus"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "flag provided but not defined: -bogus" in out.stderr and "-proxy-metrics" in out.stderr


def test_api_port_in_use_names_the_address():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "lab.proxy", "-host", "127.0.0.1", "-port", str(port)],
                             capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"127.0.0.1:{port}" in out.stderr and "address already in use" in out.stderr


def test_sigterm_stops_the_server_and_frees_its_ports():
    listen_port = free_port()
    with Running() as server:
        body = {"name": "x", "listen": f"127.0.0.1:{listen_port}", "upstream": "127.0.0.1:1"}
        assert requests.post(f"http://127.0.0.1:{server.port}/proxies", json=body, timeout=5).status_code == 201
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0
    for port in (server.port, listen_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("lab-proxy")
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable} (package not pip-installed)")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "2.12.0" in out.stdout


@pytest.mark.unit
@pytest.mark.parametrize("argv, expected", [
    ([], Options()),
    (["-host", "0.0.0.0", "-port", "9000"], Options(host="0.0.0.0", port="9000")),
    (["--host=::1", "--port=1"], Options(host="::1", port="1")),
    (["-seed", "42", "-proxy-metrics", "--runtime-metrics=false"], Options(seed=42, proxy_metrics=True)),
    (["-config", "a.json", "-version"], Options(config="a.json", version=True)),
])
def test_flag_parsing(argv, expected):
    assert parse_args(argv) == expected


@pytest.mark.unit
@pytest.mark.parametrize("argv, message", [
    (["-port"], "flag needs an argument: -port"),
    (["-seed", "x"], 'invalid value "x" for flag -seed'),
    (["---host", "x"], "bad flag syntax"),
    (["-version=maybe"], 'invalid boolean value "maybe"'),
])
def test_flag_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_args(argv)
