"""Load from Locust, used as a library: headless, in the lab's process, FastHttpUser.

Locust runs on gevent. Its import normally monkey-patches the whole process, which the lab's asyncio
code cannot live with, so it is imported with LOCUST_SKIP_MONKEY_PATCH (FastHttpUser's
geventhttpclient is cooperative without the patch) in the main thread (its import installs a SIGWINCH
handler), and it runs in a thread of its own with that thread's own gevent hub. Every request it
makes lands in a deque (appends are atomic) as ``Request``; the asyncio side drains it.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from typing import Any, Mapping

from ..errors import UsageError

JOIN_S = 10.0


@dataclasses.dataclass(frozen=True)
class Request:
    ended: float  # time.monotonic() when the answer (or the error) arrived
    latency_s: float
    status: int  # 0: no answer
    error: str | None  # None: an expected status; else "HTTP 503", "ConnectionRefusedError", "timeout", ...


@dataclasses.dataclass(frozen=True)
class HttpCall:
    """What each simulated user does, again and again: one request."""

    url: str
    method: str = "GET"
    body: bytes | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    expected_statuses: tuple[int, ...] = (200,)
    timeout_s: float = 5.0


def _import_locust() -> Any:
    if threading.current_thread() is not threading.main_thread():
        raise UsageError("Locust must first be imported in the main thread (it installs a signal handler)")
    os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
    try:
        import locust
    except ImportError as err:
        raise UsageError(f"HTTP targets need Locust ({err}): pip install 'chaoslab[http]'") from err

    return locust


class LocustLoad:
    """``users`` FastHttpUsers, spawned at ``spawn_rate`` per second, each making ``call`` ``rate_per_user``
    times a second (Locust's constant_throughput: an offered load, so a slower service shows as fewer
    answers, not as a slower machine), or back to back when ``rate_per_user`` is 0, from ``start`` until
    ``stop``."""

    def __init__(self, call: HttpCall, users: int = 10, spawn_rate: float = 10.0, rate_per_user: float = 0.0) -> None:
        if users < 1 or spawn_rate <= 0 or rate_per_user < 0:
            raise UsageError(f"Locust load needs users >= 1, spawn_rate > 0, rate_per_user >= 0 (got {users}, "
                             f"{spawn_rate}, {rate_per_user})")
        self.call, self.users, self.spawn_rate, self.rate_per_user = call, users, spawn_rate, rate_per_user
        self.requests: collections.deque[Request] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        _import_locust()
        self._thread = threading.Thread(target=self._run, name="lab-locust", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            import gevent
            from locust import FastHttpUser, constant, constant_throughput, task
            from locust.env import Environment

            call, requests = self.call, self.requests
            split = call.url.split("/", 3)
            host, path = "/".join(split[:3]), "/" + (split[3] if len(split) > 3 else "")

            class User(FastHttpUser):
                wait_time = constant_throughput(self.rate_per_user) if self.rate_per_user else constant(0)
                network_timeout = connection_timeout = call.timeout_s

                @task
                def request(self) -> None:
                    started = time.monotonic()
                    status, error = 0, None
                    try:
                        body: Any = call.body  # bytes: FastHttpSession sends them as they are (its stubs say str)
                        with self.client.request(call.method, path, data=body, headers=dict(call.headers),
                                                 catch_response=True) as response:
                            status = response.status_code or 0
                            failure = getattr(response, "error", None)  # set on a response that never came
                            if not status:
                                error = type(failure).__name__ if failure is not None else "NoResponse"
                            elif status not in call.expected_statuses:
                                error = f"HTTP {status}"
                            response.success()
                    except Exception as err:  # noqa: BLE001  (anything the client raises is the call's outcome)
                        error = type(err).__name__
                    ended = time.monotonic()
                    requests.append(Request(ended, ended - started, status, error))

            User.host = host
            env = Environment(user_classes=[User])
            runner = env.create_local_runner()
            runner.start(self.users, spawn_rate=self.spawn_rate)
            while not self._stop.is_set():
                gevent.sleep(0.05)
            runner.quit()
        except BaseException as err:  # noqa: BLE001  (reported by stop())
            self._failure = err

    def stop(self) -> None:
        """Stop the users and wait for the thread (bounded); a failure inside Locust is raised here."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_S)
        if self._failure is not None:
            raise UsageError(f"the Locust load failed: {type(self._failure).__name__}: {self._failure}")

    def drain(self) -> list[Request]:
        out = []
        while True:
            try:
                out.append(self.requests.popleft())
            except IndexError:
                return out
