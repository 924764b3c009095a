"""``python -m lab.proxy`` as a child process, for tests that measure the process itself.

RSS, open-file limits and event-loop fairness are properties of the server
process, so those tests run the real command line, not an in-process server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .helpers import free_port

REPO = Path(__file__).resolve().parents[2]


def request(port: int, method: str, path: str, body: Any = None, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """One blocking HTTP request on a fresh connection; returns (status, body)."""
    data = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head + data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2]


class ProxyProcess:
    """A lab.proxy server process on a free loopback port; a context manager that always stops it."""

    def __init__(self, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 preexec_fn: Callable[[], None] | None = None) -> None:
        self.port = free_port()
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.preexec_fn = preexec_fn
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> "ProxyProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.proxy", "-host", "127.0.0.1", "-port", str(self.port), *self.args],
            cwd=REPO, env=self.env, preexec_fn=self.preexec_fn,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lab.proxy exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if request(self.port, "GET", "/version", timeout_s=1)[0] == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("lab.proxy did not answer /version within 20 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def status_kib(self, field: str) -> int:
        """A ``/proc/<pid>/status`` size field (VmRSS, VmHWM) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def create_proxy(self, name: str, upstream_port: int, listen_port: int = 0) -> int:
        """Create a proxy to ``127.0.0.1:upstream_port``; returns the port it listens on."""
        status, body = request(self.port, "POST", "/proxies", {
            "name": name, "listen": f"127.0.0.1:{listen_port}", "upstream": f"127.0.0.1:{upstream_port}"})
        assert status == 201, body
        return int(json.loads(body)["listen"].rsplit(":", 1)[1])
