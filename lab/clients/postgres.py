"""PostgresClient: an asyncpg pool that behaves during faults, and proves it.

What it adds to asyncpg's pool:
* bounds everywhere: connect, acquire, command and close timeouts;
* TCP keepalive on every client socket, so a silently dead peer is noticed;
* a connection idle longer than ``validate_idle_after_s`` is checked with
  ``SELECT 1`` before it is handed out, and replaced if that fails;
* a circuit breaker around each operation (acquire + query). Business errors
  (constraint violations, syntax errors...) neither trip nor reset it and pass
  through unchanged; infrastructure failures are raised as
  DatabaseUnavailable / QueryTimeout / PoolExhausted (LabError) with the
  original as ``__cause__``, by the one table in pg_errors.py, and the
  connection that met one is terminated, never returned to the pool;
* ``close()`` that returns within its bound, falling back to ``terminate()``;
* stats (size, idle, in use, waiting, acquire latency) and a leak check against
  the server's ``pg_stat_activity``;
* with a tracer (``tracer=`` or an installed OpenTelemetry TracerProvider), a span
  around each query and each pool acquire, nested under the caller's span
  (tracing.py); without one, nothing per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from typing import Any, AsyncIterator, cast

import asyncpg

from ..errors import CallNotPermitted, DatabaseUnavailable, PoolExhausted, QueryTimeout
from ..resilience import BreakerConfig, CircuitBreaker, presets
from ..resilience.retry import RetryPolicy
from .observability import Histogram, log_event
from .pg_errors import Phase, breaks_connection, is_business_error, is_infrastructure_error, translated
from .pg_sessions import terminate_sessions
from .tracing import ClientSpans, client_spans, route

log = logging.getLogger("lab.clients.postgres")

RECORDED = (is_infrastructure_error,)
IGNORED = (is_business_error,)


#: SQLSTATEs after which the whole transaction may be run again as it was: 40001
#: serialization_failure, 40P01 deadlock_detected (the server rolled it back).
RETRYABLE_SQLSTATES = ("40001", "40P01")


def is_retryable_transaction_error(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and getattr(exc, "sqlstate", None) in RETRYABLE_SQLSTATES


def resilience_preset() -> presets.Preset:
    """The "database" preset (lab.resilience.presets) with this client's error tables."""
    return presets.database(record_exceptions=RECORDED, ignore_exceptions=IGNORED,
                            retry_on=(is_retryable_transaction_error,))


def transaction_retry(deadline_s: float, max_attempts: int = 8) -> RetryPolicy:
    """The default policy of ``run_transaction``: the database preset's quick full-jitter backoff, only
    40001 / 40P01, bounded by ``deadline_s``."""
    return dataclasses.replace(resilience_preset().retry, max_attempts=max_attempts, deadline_s=deadline_s)


def default_breaker() -> BreakerConfig:
    return resilience_preset().breaker


@dataclasses.dataclass(frozen=True)
class PostgresSettings:
    dsn: str
    min_size: int = 2
    max_size: int = 10
    connect_timeout_s: float = 2.0
    acquire_timeout_s: float = 2.0
    command_timeout_s: float = 2.0
    close_timeout_s: float = 3.0
    validate_idle_after_s: float = 5.0
    validation_timeout_s: float = 1.0
    keepalive_idle_s: int = 5
    keepalive_interval_s: int = 2
    keepalive_count: int = 3
    max_inactive_connection_lifetime_s: float = 300.0
    application_name: str = "chaoslab"
    #: how often a busy backend checks that we are still there (PG >= 14); 0 disables
    client_check_interval_ms: int = 1000
    breaker: BreakerConfig | None = None  # None: default_breaker(); pass one to tune it


@dataclasses.dataclass(frozen=True)
class PoolStats:
    size: int
    idle: int
    in_use: int
    waiting: int
    max_size: int
    acquires: int
    acquire_p50_s: float
    acquire_p99_s: float


@dataclasses.dataclass(frozen=True)
class LeakReport:
    server_sessions: int  # pg_stat_activity rows with our application_name (the checking session excluded)
    pool_size: int
    leaked: int  # sessions the server holds for us that the pool does not know about

    @property
    def ok(self) -> bool:
        return self.leaked == 0


def _set_keepalive(conn: asyncpg.Connection, settings: PostgresSettings) -> None:
    transport = getattr(conn, "_transport", None)  # asyncpg has no public socket accessor
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", settings.keepalive_idle_s), ("TCP_KEEPINTVL", settings.keepalive_interval_s),
                          ("TCP_KEEPCNT", settings.keepalive_count)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class PostgresClient:
    def __init__(self, settings: PostgresSettings, breaker: CircuitBreaker | None = None, *,
                 tracer: Any | None = None) -> None:
        """``tracer``: an OpenTelemetry Tracer for this client's spans (default: the installed
        TracerProvider's, if any; none, no spans and no cost per call)."""
        self.settings = settings
        self.breaker = breaker or CircuitBreaker(f"postgres:{settings.application_name}",
                                                 settings.breaker or default_breaker())
        self.pool: asyncpg.Pool | None = None
        self.acquire_latency = Histogram()
        self._waiting = 0
        self._last_used: dict[int, float] = {}  # server pid -> monotonic time it was released
        self._in_use: set[int] = set()  # server pids of connections handed out and not yet released
        self.replaced_connections = 0
        spans = client_spans(tracer, "lab.clients.postgres")
        if spans is not None:
            self._spans = spans
            route(self, "_run", self._traced_run)
            route(self, "_acquire", self._traced_acquire)
            route(self, "transaction", self._traced_transaction)

    # -- life cycle --------------------------------------------------------------

    async def start(self) -> "PostgresClient":
        s = self.settings
        with translated(f"opening a pool to {_redact(s.dsn)}", Phase.CONNECT):
            self.pool = await asyncio.wait_for(asyncpg.create_pool(
                s.dsn, min_size=s.min_size, max_size=s.max_size, timeout=s.connect_timeout_s,
                command_timeout=s.command_timeout_s, init=self._on_new_connection,
                max_inactive_connection_lifetime=s.max_inactive_connection_lifetime_s,
                server_settings=self._server_settings(),
            ), s.connect_timeout_s * max(1, s.min_size) + 1)
        return self

    async def _on_new_connection(self, conn: asyncpg.Connection) -> None:
        """Run by the pool on every connection it opens: the first ones and each replacement of one that died."""
        _set_keepalive(conn, self.settings)

    def _server_settings(self) -> dict[str, str]:
        settings = {"application_name": self.settings.application_name}
        if self.settings.client_check_interval_ms > 0:
            settings["client_connection_check_interval"] = str(self.settings.client_check_interval_ms)
        return settings

    async def close(self) -> None:
        """Close gracefully within close_timeout_s; past it, terminate every connection.

        A terminated connection's backend may be busy in a query and not notice
        for a while, so the sessions this client still had in use are also ended
        server-side (pg_terminate_backend on exactly those pids), within the same bound.
        """
        pool, self.pool = self.pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self.settings.close_timeout_s)
            return
        except Exception as err:  # whatever stopped the graceful close, terminate() still ends everything
            log_event(log, logging.WARNING, "pool close timed out or failed; terminating", error=repr(err),
                      in_use=len(self._in_use))
        pids = sorted(self._in_use)
        pool.terminate()
        if pids:
            await self._terminate_backends(pids)

    async def _terminate_backends(self, pids: list[int]) -> None:
        s = self.settings
        try:
            with translated("connecting to end our sessions", Phase.CONNECT):
                conn = await asyncpg.connect(s.dsn, timeout=s.connect_timeout_s,
                                             server_settings=self._server_settings())
        except DatabaseUnavailable as err:
            log_event(log, logging.WARNING, "cannot reach the server to end our sessions", error=str(err))
            return
        try:
            await terminate_sessions(conn, s.application_name, s.command_timeout_s, pids)
        except (DatabaseUnavailable, QueryTimeout) as err:
            log_event(log, logging.WARNING, "ending our sessions failed", error=str(err))
        finally:
            conn.terminate()

    async def __aenter__(self) -> "PostgresClient":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connections -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A validated pooled connection, released (or terminated if broken) afterwards.

        What the block's commands raise goes through the table too: infrastructure
        failures come out as LabErrors, the caller's own errors as they are.
        """
        conn, pid = await self._acquire()
        broken = False
        try:
            with translated("a command on a pooled connection"):
                yield conn
        except BaseException as exc:
            broken = breaks_connection(exc)
            raise
        finally:
            await self._release(conn, pid, broken)

    async def _acquire(self) -> tuple[asyncpg.Connection, int]:
        if self.pool is None:
            raise DatabaseUnavailable("the client is not started (call start())")
        s = self.settings
        deadline = time.monotonic() + s.acquire_timeout_s
        started = time.monotonic()
        self._waiting += 1
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PoolExhausted(f"no connection within {s.acquire_timeout_s:g}s "
                                        f"(pool size {self.pool.get_size()}/{s.max_size})")
                # with an idle connection, acquire() will not wait for a release (and connect is bounded)
                bound = asyncio.timeout(left) if self.pool.get_idle_size() == 0 else contextlib.nullcontext()
                try:
                    async with bound:  # no extra task, unlike acquire(timeout=...)
                        with translated("acquiring a connection", Phase.CONNECT):
                            conn = await self.pool.acquire()
                except TimeoutError:  # only our own bound: the table turned any other into a LabError
                    raise PoolExhausted(f"no connection within {s.acquire_timeout_s:g}s "
                                        f"(pool size {self.pool.get_size()}/{s.max_size})") from None
                try:
                    pid = conn.get_server_pid()
                except asyncpg.InterfaceError:  # it died between acquire and now: asyncpg took it back
                    self.replaced_connections += 1
                    continue
                self._in_use.add(pid)
                try:
                    valid = await self._valid(conn, pid)
                except BaseException:  # cancelled mid-validation: not the caller's yet, so hand it back here
                    await self._release(conn, pid, broken=True)
                    raise
                if valid:
                    self.acquire_latency.observe(time.monotonic() - started)
                    return conn, pid
                self.replaced_connections += 1
                await self._release(conn, pid, broken=True)
        finally:
            self._waiting -= 1

    async def _valid(self, conn: asyncpg.Connection, pid: int) -> bool:
        last = self._last_used.get(pid)
        if last is None or time.monotonic() - last < self.settings.validate_idle_after_s:
            return not conn.is_closed()
        try:
            await conn.fetchval("SELECT 1", timeout=self.settings.validation_timeout_s)
            return True
        except Exception as err:
            if not is_infrastructure_error(err):
                raise
            log_event(log, logging.INFO, "idle connection failed validation; replacing it", pid=pid, error=repr(err))
            return False

    async def _release(self, conn: asyncpg.Connection, pid: int, broken: bool) -> None:
        pool = self.pool
        self._in_use.discard(pid)
        if broken:
            self._last_used.pop(pid, None)
            try:
                conn.terminate()  # the pool opens a fresh one on demand
            except asyncpg.InterfaceError:
                pass  # asyncpg already took back a connection it saw close
        else:
            self._last_used[pid] = time.monotonic()
        if pool is None:
            return
        try:
            await pool.release(conn, timeout=self.settings.close_timeout_s)
        except asyncpg.InterfaceError:
            pass  # asyncpg already took back a connection it saw close
        except Exception as err:  # the reset on release failed: the caller's command is done, so only log
            log_event(log, logging.WARNING, "release failed; connection terminated", pid=pid, error=repr(err))
            try:
                conn.terminate()
            except asyncpg.InterfaceError:
                pass  # the failed release already detached it

    async def _traced_acquire(self) -> tuple[asyncpg.Connection, int]:
        pool = self.pool
        with self._spans.acquire(self.settings.application_name, pool.get_size() if pool else 0,
                                 pool.get_idle_size() if pool else 0):
            return await type(self)._acquire(self)

    # -- queries ---------------------------------------------------------------------

    _spans: ClientSpans

    async def _traced_run(self, method: str, query: str, args: tuple[Any, ...], timeout: float | None) -> Any:
        with self._spans.query(method, query, self.settings.application_name):
            return await type(self)._run(self, method, query, args, timeout)

    async def _run(self, method: str, query: str, args: tuple[Any, ...], timeout: float | None) -> Any:
        limit = timeout or self.settings.command_timeout_s

        async def operation() -> Any:
            conn, pid = await self._acquire()  # explicit, not connection(): this is the hot path
            broken = False
            try:
                with translated(f"{method} (command timeout {limit:g}s)"):
                    return await getattr(conn, method)(query, *args, timeout=limit)
            except BaseException as exc:
                broken = breaks_connection(exc)
                raise
            finally:
                await self._release(conn, pid, broken)

        return await self.breaker.call(operation)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        return cast(str, await self._run("execute", query, args, timeout))

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        return cast("list[Any]", await self._run("fetch", query, args, timeout))

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._run("fetchrow", query, args, timeout)

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._run("fetchval", query, args, timeout)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside a transaction, the whole of it under the breaker."""
        async with self.breaker:
            async with self.connection() as conn:
                async with conn.transaction():
                    yield conn

    @contextlib.asynccontextmanager
    async def _traced_transaction(self) -> AsyncIterator[asyncpg.Connection]:
        with self._spans.transaction(self.settings.application_name):
            async with type(self).transaction(self) as conn:
                yield conn

    async def run_transaction(self, work: Any, retry: RetryPolicy | None = None) -> Any:
        """``await work(conn)`` inside a transaction; on a serialization failure or deadlock
        (40001, 40P01: the server rolled the transaction back) run it again, whole, under
        ``retry`` (default ``transaction_retry`` bounded by three command timeouts). ``work``
        must be safe to run again: nothing of a failed attempt is committed.
        """
        policy = retry or transaction_retry(3 * self.settings.command_timeout_s)

        async def attempt() -> Any:
            async with self.transaction() as conn:
                return await work(conn)

        return await policy.call(attempt)

    # -- observation -----------------------------------------------------------------

    def stats(self) -> PoolStats:
        pool = self.pool
        size = pool.get_size() if pool else 0
        idle = pool.get_idle_size() if pool else 0
        return PoolStats(size=size, idle=idle, in_use=size - idle, waiting=self._waiting,
                         max_size=self.settings.max_size, acquires=self.acquire_latency.count,
                         acquire_p50_s=self.acquire_latency.quantile(0.5),
                         acquire_p99_s=self.acquire_latency.quantile(0.99))

    async def leak_check(self, dsn: str | None = None) -> LeakReport:
        """Compare the server's sessions for our application_name with the pool's size.

        Uses its own short-lived connection (on ``dsn``, e.g. the unproxied address,
        or the client's own), so it works while the pool is exhausted. Its failures are LabErrors too.
        """
        s = self.settings
        with translated("connecting for the leak check", Phase.CONNECT):
            conn = await asyncpg.connect(dsn or s.dsn, timeout=s.connect_timeout_s,
                                         server_settings={"application_name": "chaoslab-leak-check"})
        try:
            with translated("the leak check"):
                count = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    s.application_name, timeout=s.command_timeout_s)
        finally:
            conn.terminate()  # a one-off session: no graceful goodbye to wait for
        size = self.pool.get_size() if self.pool else 0
        # connections that are closed client-side may linger briefly on the server
        return LeakReport(server_sessions=count, pool_size=size, leaked=max(0, count - size))

    def prometheus(self) -> str:
        stats = self.stats()
        labels = f'pool="{self.settings.application_name}"'
        lines = ["# TYPE lab_pg_pool_connections gauge"]
        for state, value in (("idle", stats.idle), ("in_use", stats.in_use), ("total", stats.size)):
            lines.append(f'lab_pg_pool_connections{{{labels},state="{state}"}} {value}')
        lines += ["# TYPE lab_pg_pool_waiting gauge", f"lab_pg_pool_waiting{{{labels}}} {stats.waiting}",
                  "# TYPE lab_pg_pool_replaced_connections_total counter",
                  f"lab_pg_pool_replaced_connections_total{{{labels}}} {self.replaced_connections}",
                  "# TYPE lab_pg_acquire_seconds histogram"]
        lines += self.acquire_latency.prometheus("lab_pg_acquire_seconds", labels)
        return "\n".join(lines) + "\n" + self.breaker.prometheus()


def _redact(dsn: str) -> str:
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


__all__ = ["IGNORED", "RECORDED", "CallNotPermitted", "LeakReport", "PoolStats", "PostgresClient", "PostgresSettings",
           "default_breaker", "is_business_error", "is_infrastructure_error", "is_retryable_transaction_error",
           "resilience_preset", "transaction_retry"]
