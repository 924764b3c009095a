"""W3C Trace Context (``traceparent`` / ``tracestate``): parse, format, and carry in Kafka headers.

Why our own codec and not OpenTelemetry's propagator: the SDK is optional
(``pip install chaoslab[trace]``), but a consumer must still read and check the
headers a traced producer wrote, and a malformed header from some other
producer must be a clear error, never a crash or a silently made-up parent.

What is guaranteed (https://www.w3.org/TR/trace-context/, level 1 and 2):
* ``parse_traceparent`` accepts ``00-<32 hex trace id>-<16 hex span id>-<2 hex flags>``
  (lowercase hex, ids not all zero) and, for a later version, the same four
  fields followed by ``-`` and whatever that version adds; version ``ff`` is
  invalid. Anything else raises TraceContextError naming the header and what
  was wrong in it. It never raises anything else, whatever it is given.
* ``parse_tracestate`` accepts up to 32 comma-separated ``key=value`` members
  (keys as the spec's grammar, values of printable ASCII without ``,`` or ``=``,
  no key twice); empty members are skipped.
* ``format`` of a parsed context gives back the version-00 header: a round trip
  keeps trace id, span id and flags.

In Kafka the two travel as record headers named ``traceparent`` and
``tracestate`` (UTF-8 values); in an envelope they are among its own headers
(envelope.py), so an event keeps its trace through any relay that keeps its headers.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Mapping

from ..errors import TraceContextError

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: The flag bit saying the caller recorded (sampled) its span.
SAMPLED = 0x01
#: At most this many members in a tracestate (the spec's limit).
MAX_TRACESTATE_MEMBERS = 32

_HEX = frozenset("0123456789abcdef")
_SIMPLE_KEY = re.compile(r"[a-z][a-z0-9_\-*/]{0,255}\Z")
_TENANT_KEY = re.compile(r"[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}\Z")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]\Z")

TraceState = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class TraceContext:
    """Where a span sits: its trace, its own id, the caller's flags, and vendors' ``tracestate``."""

    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero
    flags: int = SAMPLED
    tracestate: TraceState = ()

    def __post_init__(self) -> None:
        _hex_id(TRACEPARENT, "trace id", self.trace_id, 32)
        _hex_id(TRACEPARENT, "span id", self.span_id, 16)
        if not isinstance(self.flags, int) or isinstance(self.flags, bool) or not 0 <= self.flags <= 0xFF:
            raise TraceContextError(TRACEPARENT, f"flags must be an integer from 0 to 255, not {self.flags!r}")

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def traceparent(self) -> str:
        """The version-00 ``traceparent`` header value."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """``traceparent`` (and ``tracestate`` if any) as Kafka record headers."""
        headers = [(TRACEPARENT, self.traceparent().encode())]
        if self.tracestate:
            headers.append((TRACESTATE, format_tracestate(self.tracestate).encode()))
        return headers


def _hex_id(header: str, what: str, value: object, digits: int) -> None:
    if not isinstance(value, str) or len(value) != digits or not _HEX.issuperset(value):
        raise TraceContextError(header, f"the {what} must be {digits} lowercase hex digits, not {value!r:.80}")
    if value.count("0") == digits:
        raise TraceContextError(header, f"the {what} must not be all zeros")


def _text(header: str, value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError as err:
            raise TraceContextError(header, f"is not ASCII (byte {err.start})") from None
    if not isinstance(value, str):
        raise TraceContextError(header, f"must be a string or bytes, not {type(value).__name__}")
    return value.strip(" \t")


def parse_traceparent(value: str | bytes) -> TraceContext:
    """The context of a ``traceparent`` header; TraceContextError naming what is wrong in it."""
    text = _text(TRACEPARENT, value)
    if len(text) < 55:
        raise TraceContextError(TRACEPARENT, f"is {len(text)} characters, a version-00 header is 55: {text!r:.80}")
    version = text[:2]
    if not _HEX.issuperset(version) or text[2] != "-":
        raise TraceContextError(TRACEPARENT, f"must start with a 2-digit lowercase hex version and '-': {text!r:.80}")
    if version == "ff":
        raise TraceContextError(TRACEPARENT, "version ff is invalid")
    if version == "00" and len(text) != 55:
        raise TraceContextError(TRACEPARENT, f"a version-00 header is 55 characters, not {len(text)}")
    if len(text) > 55 and text[55] != "-":
        raise TraceContextError(TRACEPARENT, "fields a later version adds must follow a '-'")
    if text[35] != "-" or text[52] != "-":
        raise TraceContextError(TRACEPARENT, f"fields must be separated by '-' as version-trace-span-flags: "
                                             f"{text[:55]!r}")
    flags = text[53:55]
    if not _HEX.issuperset(flags):
        raise TraceContextError(TRACEPARENT, f"the flags must be 2 lowercase hex digits, not {flags!r}")
    return TraceContext(text[3:35], text[36:52], int(flags, 16))


def parse_tracestate(value: str | bytes) -> TraceState:
    """The members of a ``tracestate`` header, in order; TraceContextError naming what is wrong."""
    text = _text(TRACESTATE, value)
    members: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in text.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, equals, member_value = member.partition("=")
        if not equals:
            raise TraceContextError(TRACESTATE, f"member {member!r:.60} is not key=value")
        if not (_SIMPLE_KEY.match(key) or _TENANT_KEY.match(key)):
            raise TraceContextError(TRACESTATE, f"key {key!r:.60} is not a valid tracestate key")
        if not _VALUE.match(member_value):
            raise TraceContextError(TRACESTATE, f"the value of {key!r} is not a valid tracestate value")
        if key in seen:
            raise TraceContextError(TRACESTATE, f"key {key!r} appears more than once")
        seen.add(key)
        members.append((key, member_value))
        if len(members) > MAX_TRACESTATE_MEMBERS:
            raise TraceContextError(TRACESTATE, f"has more than {MAX_TRACESTATE_MEMBERS} members")
    return tuple(members)


def format_tracestate(members: TraceState) -> str:
    return ",".join(f"{key}={value}" for key, value in members)


def from_headers(headers: Iterable[tuple[str, bytes]] | Mapping[str, str] | None,
                 *, keep_tracestate: bool = True) -> TraceContext | None:
    """The context carried in Kafka record headers (name, bytes pairs) or an envelope's headers
    (name -> str); None when there is no ``traceparent``.

    A malformed or repeated header raises TraceContextError naming it (a consumer that wants to go on
    without a broken ``tracestate`` calls again with ``keep_tracestate=False``)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    parent: str | bytes | None = None
    state: str | bytes | None = None
    for item in pairs:
        if not isinstance(item, tuple) or len(item) != 2:
            continue  # the envelope codec names malformed header pairs; here they carry no context
        name, raw = item
        if name == TRACEPARENT:
            if parent is not None:
                raise TraceContextError(TRACEPARENT, "appears more than once")
            parent = raw if raw is not None else b""
        elif name == TRACESTATE and keep_tracestate:
            if state is not None:
                raise TraceContextError(TRACESTATE, "appears more than once")
            state = raw if raw is not None else b""
    if parent is None:
        return None
    context = parse_traceparent(parent)
    if state is None:
        return context
    return dataclasses.replace(context, tracestate=parse_tracestate(state))


def with_context(headers: list[tuple[str, bytes]], context: TraceContext) -> list[tuple[str, bytes]]:
    """``headers`` with ``context`` as their trace context (any earlier one replaced: a relay's own span
    is the parent of what it sends)."""
    kept = [item for item in headers if item[0] != TRACEPARENT and item[0] != TRACESTATE]
    return kept + context.kafka_headers()


__all__ = ["MAX_TRACESTATE_MEMBERS", "SAMPLED", "TRACEPARENT", "TRACESTATE", "TraceContext", "TraceState",
           "format_tracestate", "from_headers", "parse_tracestate", "parse_traceparent", "with_context"]
