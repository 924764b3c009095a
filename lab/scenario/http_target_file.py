"""An HTTP target described in a TOML file: ``python -m lab run blackhole --target orders.toml``.

    name = "orders"                                  # optional; shown in the verdict table
    [request]
    url = "http://127.0.0.1:8000/orders"             # required
    method = "POST"                                  # GET (default), HEAD, POST, PUT, PATCH, DELETE, OPTIONS
    body = '{"item": 42}'                            # sent as UTF-8
    headers = { "Content-Type" = "application/json" }
    expected_statuses = [200, 201]                   # any other status is an error (default [200])
    timeout_s = 5.0                                  # the client's timeout (connect and read)
    [load]                                           # Locust
    users = 10
    spawn_rate = 50.0                                # users started per second
    rate_per_user = 20.0                             # requests/s each user offers; 0 = back to back
    [checks]
    fail_fast_s = 1.0                                # every request in the fault answered within this
    [breaker]                                        # optional: the service's breaker, from its /metrics
                                                     # ([[breaker]] tables for several: one per component)
    metrics_url = "http://127.0.0.1:8000/metrics"
    metric = "orders_db_breaker_state"
    component = "pg"                                 # "pg" or "kafka": whose breaker it is
    labels = { name = "orders-db" }                  # select the sample
    states = { "0" = "CLOSED", "1" = "OPEN", "2" = "HALF_OPEN" }   # value -> state (this is the default)
    period_s = 0.05                                  # how often /metrics is polled
    timeout_s = 1.0                                  # bound of each poll
    [statements]                                     # optional: the service's own statements, by component
    pg = "UPDATE stock"                              # a regular expression: pg_admin_shutdown's and
                                                     # pg_serialization_failures' faults hit the statements it matches

TOML because Python reads it with the standard library (``tomllib``). The whole file is checked before
anything starts: an unknown section or key, a value of the wrong type or out of range is a ``UsageError``
naming the file, the section and the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import tomllib
import urllib.parse
from pathlib import Path
from typing import Any, Mapping

from ..errors import UsageError
from .http_load import HttpCall
from .http_target import HttpTarget
from .prometheus import BreakerMetric
from .target import STATEMENT_COMPONENTS, checked_statements

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
STATES = ("CLOSED", "OPEN", "HALF_OPEN")
COMPONENTS = ("pg", "kafka")
SECTIONS = {
    "request": ("url", "method", "body", "headers", "expected_statuses", "timeout_s"),
    "load": ("users", "spawn_rate", "rate_per_user"),
    "checks": ("fail_fast_s",),
    "breaker": ("metrics_url", "metric", "component", "labels", "states", "period_s", "timeout_s"),
    "statements": STATEMENT_COMPONENTS,
}


class _Section:
    """One table of the file, read key by key; every problem names ``file: [section] key``."""

    def __init__(self, path: Path, name: str, table: Any, label: str | None = None) -> None:
        self.path, self.name, self.label = path, name, label or f"[{name}]"
        if not isinstance(table, dict):
            raise self.error(None, f"must be a table ({self.label}), not a {type(table).__name__}")
        unknown = sorted(set(table) - set(SECTIONS[name]))
        if unknown:
            raise self.error(unknown[0], f"unknown key (known: {', '.join(SECTIONS[name])})")
        self.table = table

    def error(self, key: str | None, problem: str) -> UsageError:
        return UsageError(f"target file {self.path}: {self.label}" + (f" {key}" if key else "") + f": {problem}")

    def has(self, key: str) -> bool:
        return key in self.table

    def string(self, key: str, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if value is None:
            raise self.error(key, "is required")
        if not isinstance(value, str) or (not value and key != "body"):
            raise self.error(key, f"must be a non-empty string, not {value!r}")
        return value

    def number(self, key: str, default: float, minimum: float, above: bool) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number, not {value!r}")
        if value < minimum or (above and value == minimum):
            raise self.error(key, f"must be {'>' if above else '>='} {minimum:g}, not {value!r}")
        return float(value)

    def integer(self, key: str, default: int, minimum: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"must be a whole number >= {minimum}, not {value!r}")
        return value

    def strings(self, key: str) -> dict[str, str]:
        value = self.table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.error(key, f"must be a table of strings (e.g. {{ name = \"value\" }}), not {value!r}")
        return dict(value)

    def url(self, key: str) -> str:
        value = self.string(key)
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(key, f"must be an http:// or https:// URL with a host, not {value!r}")
        try:
            _ = parts.port  # raises on a port that is not a number in 0-65535
        except ValueError:
            raise self.error(key, f"has a bad port: {value!r}") from None
        return value


def _call(section: _Section) -> HttpCall:
    method = section.string("method", "GET").upper()
    if method not in METHODS:
        raise section.error("method", f"must be one of {', '.join(METHODS)}, not {method!r}")
    statuses = section.table.get("expected_statuses", [200])
    if (not isinstance(statuses, list) or not statuses
            or not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses)):
        raise section.error("expected_statuses", f"must be a non-empty list of HTTP statuses (100-599), not "
                                                 f"{statuses!r}")
    body = section.string("body", "") if section.has("body") else None
    return HttpCall(section.url("url"), method, body.encode() if body is not None else None,
                    section.strings("headers"), tuple(statuses), section.number("timeout_s", 5.0, 0, above=True))


def _breaker(section: _Section) -> BreakerMetric:
    component = section.string("component", "pg")
    if component not in COMPONENTS:
        raise section.error("component", f"must be one of {', '.join(COMPONENTS)}, not {component!r}")
    states: Mapping[float, str] | None = None
    if section.has("states"):
        table = section.table["states"]
        if not isinstance(table, dict) or not table:
            raise section.error("states", f"must be a table of value = state, not {table!r}")
        states = {}
        for raw, state in table.items():
            try:
                value = float(raw)
            except ValueError:
                raise section.error("states", f"key {raw!r} is not a number (the metric's value)") from None
            if state not in STATES:
                raise section.error("states", f"{raw} = {state!r}: the state must be one of {', '.join(STATES)}")
            states[value] = state
    metric = section.string("metric")
    if not metric.replace("_", "a").replace(":", "a").isalnum() or metric[0].isdigit():
        raise section.error("metric", f"is not a Prometheus metric name: {metric!r}")
    options: dict[str, Any] = {} if states is None else {"states": states}
    return BreakerMetric(section.url("metrics_url"), metric, component, section.strings("labels"),
                         period_s=section.number("period_s", 0.05, 0, above=True),
                         timeout_s=section.number("timeout_s", 1.0, 0, above=True), **options)


def _breakers(path: Path, raw: Any) -> list[BreakerMetric]:
    """``[breaker]`` (one table) or ``[[breaker]]`` (an array of them: one per component)."""
    if raw is None:
        return []
    if isinstance(raw, list):
        if not raw:
            raise UsageError(f"target file {path}: [[breaker]] is empty")
        metrics = [_breaker(_Section(path, "breaker", table, f"[[breaker]] #{index}"))
                   for index, table in enumerate(raw, 1)]
    else:
        metrics = [_breaker(_Section(path, "breaker", raw))]
    components = [metric.component for metric in metrics]
    twice = sorted({c for c in components if components.count(c) > 1})
    if twice:
        raise UsageError(f"target file {path}: [[breaker]]: two for component {', '.join(twice)} (one per component)")
    return metrics


def load_target_file(path: Path) -> HttpTarget:
    """The HttpTarget ``path`` describes; a ``UsageError`` naming the file, section and key if anything is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"target file {path}: cannot be read: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"target file {path}: is not UTF-8 text ({err.reason})") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"target file {path}: is not valid TOML: {err}") from None
    unknown = sorted(set(data) - set(SECTIONS) - {"name"})
    if unknown:
        raise UsageError(f"target file {path}: unknown section or key {unknown[0]!r} (known: name, "
                         f"{', '.join(f'[{s}]' for s in SECTIONS)})")
    if "request" not in data:
        raise UsageError(f"target file {path}: no [request] section (it needs at least url = \"http://...\")")
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise UsageError(f"target file {path}: name must be a non-empty string, not {name!r}")
    sections = {s: _Section(path, s, data.get(s, {})) for s in SECTIONS if s != "breaker"}
    call = _call(sections["request"])
    load, checks = sections["load"], sections["checks"]
    fail_fast_s = checks.number("fail_fast_s", 1.0, 0, above=True)
    if fail_fast_s >= call.timeout_s:
        raise checks.error("fail_fast_s", f"({fail_fast_s:g}) must be below [request] timeout_s "
                                          f"({call.timeout_s:g}): a request that waited out the client's timeout "
                                          f"would count as fast")
    return HttpTarget(call, users=load.integer("users", 10, 1),
                      spawn_rate=load.number("spawn_rate", 50.0, 0, above=True),
                      rate_per_user=load.number("rate_per_user", 20.0, 0, above=False),
                      fail_fast_s=fail_fast_s,
                      breaker_metric=_breakers(path, data.get("breaker")), name=name,
                      statements=checked_statements(sections["statements"].table, f"target file {path}: [statements]"))
