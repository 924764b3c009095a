"""What the Postgres client raises for what asyncpg and the OS raise: one table, read top to bottom.

    what asyncpg / the OS raised                    connecting              running a command
    ──────────────────────────────────────────────  ──────────────────────  ──────────────────────
    TimeoutError (asyncio's too)                     DatabaseUnavailable     QueryTimeout
    QueryCanceledError (57014: statement_timeout)    DatabaseUnavailable     QueryTimeout
    ClientConfigurationError (bad DSN/parameters)    ConfigError             ConfigError
    OutdatedSchemaCacheError (the app's own ALTER)   the caller's            the caller's
    InternalClientError (protocol state, ...)        DatabaseUnavailable     DatabaseUnavailable
    InterfaceError (connection closed, ...)          DatabaseUnavailable     DatabaseUnavailable
    OSError (reset, refused, EPIPE, ...)             DatabaseUnavailable     DatabaseUnavailable
    PostgresError, SQLSTATE class 08 53 57 58        DatabaseUnavailable     DatabaseUnavailable
      (ConnectionDoesNotExistError is 08003)
    any other PostgresError                          DatabaseUnavailable     the caller's
    anything else (ValueError, a LabError, ...)      the caller's            the caller's

"The caller's" errors pass through unchanged: a unique violation or a syntax error
is the application's business, neither a failure nor a success of the database.
Every other row is an infrastructure failure: the LabError is raised with the
original as ``__cause__``, the breaker counts it, and the connection that met it
is terminated rather than returned to the pool (its protocol state is unknown:
an idle connection that received a FATAL message from a dying backend fails its
next command with InternalClientError, not with a connection error).

While connecting, every PostgresError is the server refusing us (auth, too many
connections, starting up), never a query of the caller's.

PoolExhausted is not in the table: the client raises it itself when its own
acquire bound runs out.

``translated()`` applies the table (httpx's ``map_httpcore_exceptions`` is the
model): every place the client awaits asyncpg is inside one.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Callable, Literal

import asyncpg

from ..errors import ClientError, ConfigError, DatabaseUnavailable, LabError, QueryTimeout


class Phase(enum.Enum):
    CONNECT = "connecting"
    COMMAND = "running a command"


#: SQLSTATE classes that mean the server or the path to it is in trouble, not the query:
#: 08 connection exception, 53 insufficient resources, 57 operator intervention (incl.
#: 57P01 admin shutdown, 57P03 cannot connect now), 58 system error.
INFRA_SQLSTATE_CLASSES = ("08", "53", "57", "58")


def _sqlstate_class(exc: BaseException) -> str:
    return (getattr(exc, "sqlstate", None) or "")[:2]


@dataclasses.dataclass(frozen=True)
class Rule:
    """One row: which exceptions it matches and what each phase makes of them (None: the caller's)."""

    description: str
    matches: Callable[[BaseException], bool]
    connecting: type[LabError] | None
    command: type[LabError] | None

    def error_for(self, phase: Phase) -> type[LabError] | None:
        return self.connecting if phase is Phase.CONNECT else self.command


def _is(*classes: type[BaseException]) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, classes)


TABLE: tuple[Rule, ...] = (
    Rule("TimeoutError", _is(TimeoutError), DatabaseUnavailable, QueryTimeout),
    Rule("QueryCanceledError (57014)", _is(asyncpg.QueryCanceledError), DatabaseUnavailable, QueryTimeout),
    Rule("ClientConfigurationError", _is(asyncpg.ClientConfigurationError), ConfigError, ConfigError),
    Rule("OutdatedSchemaCacheError", _is(asyncpg.OutdatedSchemaCacheError), None, None),
    Rule("InternalClientError", _is(asyncpg.InternalClientError), DatabaseUnavailable, DatabaseUnavailable),
    Rule("InterfaceError", _is(asyncpg.InterfaceError), DatabaseUnavailable, DatabaseUnavailable),
    Rule("OSError", _is(OSError), DatabaseUnavailable, DatabaseUnavailable),
    Rule("PostgresError, SQLSTATE class " + "/".join(INFRA_SQLSTATE_CLASSES),
         lambda exc: isinstance(exc, asyncpg.PostgresError) and _sqlstate_class(exc) in INFRA_SQLSTATE_CLASSES,
         DatabaseUnavailable, DatabaseUnavailable),
    Rule("other PostgresError", _is(asyncpg.PostgresError), DatabaseUnavailable, None),
)


def rule_for(exc: BaseException) -> Rule | None:
    """The first row matching ``exc``; None for what no row names (it is the caller's)."""
    if isinstance(exc, LabError):
        return None
    return next((rule for rule in TABLE if rule.matches(exc)), None)


def lab_error_for(exc: BaseException, action: str, phase: Phase = Phase.COMMAND) -> LabError | None:
    """The LabError to raise instead of ``exc``, or None when ``exc`` is the caller's to see as is."""
    rule = rule_for(exc)
    error_class = rule.error_for(phase) if rule is not None else None
    if error_class is None:
        return None
    detail = str(exc)
    cause = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return error_class(f"{action} failed while {phase.value}: {cause}")


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for failures of the database or the path to it (already translated, or still foreign)."""
    return isinstance(exc, ClientError) or lab_error_for(exc, "") is not None


def is_business_error(exc: BaseException) -> bool:
    """The application's own database errors: neither a failure nor a success for the breaker."""
    return (isinstance(exc, (asyncpg.PostgresError, asyncpg.OutdatedSchemaCacheError))
            and not is_infrastructure_error(exc))


def breaks_connection(exc: BaseException) -> bool:
    """After this error (or a cancellation mid-command) the connection's protocol state is unknown:
    terminate it rather than return it to the pool."""
    return is_infrastructure_error(exc) or not isinstance(exc, Exception)


class translated:  # noqa: N801 - used like a function: ``with translated("fetch"):``
    """Raise the table's LabError (from the original) for what the block raises; the caller's errors pass.

    A plain class rather than a generator-based context manager: it sits on every command's path.
    """

    __slots__ = ("action", "phase")

    def __init__(self, action: str, phase: Phase = Phase.COMMAND) -> None:
        self.action, self.phase = action, phase

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception):
            return False  # success, or a cancellation: not ours to translate
        error = lab_error_for(exc, self.action, self.phase)
        if error is None:
            return False
        raise error from exc


__all__ = ["INFRA_SQLSTATE_CLASSES", "Phase", "Rule", "TABLE", "breaks_connection", "is_business_error",
           "is_infrastructure_error", "lab_error_for", "rule_for", "translated"]
