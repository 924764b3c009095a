"""The event envelope every message travels in, and its codec to a Kafka value plus headers.

Wire format ("binary mode", as CloudEvents' Kafka binding has it): the Kafka
value is the payload's bytes untouched, and every envelope field is one Kafka
header named ``env.<field>`` with a UTF-8 value. So a payload of any size costs
no re-encoding (no base64, no JSON escaping of a 2 MB body), and a consumer can
read the id, type and correlation id without parsing the payload.

Fields (schema version 2):

    id              str, non-empty: what consumers deduplicate by and the loss check compares
    type            str, non-empty: what happened (``orders.order.created``)
    source          str, non-empty: who says so (service name)
    time_ms         int >= 0: when, milliseconds since the Unix epoch
    schema_version  int >= 1: the envelope schema the producer wrote
    correlation_id  str or None: the request/conversation this message belongs to
    causation_id    str or None: the id of the message that caused this one (new in version 2)
    headers         the caller's own headers: name -> str (names must not start with ``env.``)
    payload         bytes: the Kafka value
    extensions      ``env.*`` headers this version does not know, kept as bytes

Compatibility, both ways and tested across versions (tests/property/test_envelope.py):
* backward: a version-1 message (no causation_id) decodes, with causation_id None;
* forward: a message from a newer schema decodes; the ``env.*`` headers this code
  does not know are kept in ``extensions`` and written back unchanged on encode,
  so a message relayed through an older service loses nothing.

Malformed input never crashes: ``decode`` and the constructor raise
EnvelopeError (a LabError) whose message and ``field`` name the field at fault.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Iterable, Mapping

from ..errors import EnvelopeError

#: The schema version this code writes.
SCHEMA_VERSION = 2
#: Prefix of the envelope's own Kafka headers.
PREFIX = "env."

_REQUIRED_TEXT = ("id", "type", "source")
_OPTIONAL_TEXT = ("correlation_id", "causation_id")
_INTEGERS = ("time_ms", "schema_version")
#: Fields each schema version writes (what a producer of that version puts on the wire).
FIELDS_BY_VERSION: dict[int, tuple[str, ...]] = {
    1: ("id", "type", "source", "time_ms", "schema_version", "correlation_id"),
    2: ("id", "type", "source", "time_ms", "schema_version", "correlation_id", "causation_id"),
}
_KNOWN = frozenset(PREFIX + name for name in FIELDS_BY_VERSION[SCHEMA_VERSION])

_HEADER_FIELD = {PREFIX + name: name for name in FIELDS_BY_VERSION[SCHEMA_VERSION]}
_MINIMUM = {"time_ms": 0, "schema_version": 1}
_new_envelope = object.__new__
_set = object.__setattr__  # decode fills a frozen Envelope it has validated itself

KafkaHeaders = list[tuple[str, bytes]]


def _text(field: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise EnvelopeError(field, f"must be a string{' or None' if optional else ''}, not {type(value).__name__}")
    if not value:
        raise EnvelopeError(field, "must not be empty")
    _utf8_encodable(field, value)
    return value


def _utf8_encodable(field: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate: no Kafka header can carry it
        raise EnvelopeError(field, f"is not encodable as UTF-8 ({err.reason} at index {err.start})") from None


def _integer(field: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EnvelopeError(field, f"must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise EnvelopeError(field, f"must be at least {minimum}, not {value}")
    return value


@dataclasses.dataclass(frozen=True)
class Envelope:
    """One event: metadata plus an opaque payload. Validated when made; immutable."""

    type: str
    source: str
    payload: bytes = b""
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    time_ms: int = dataclasses.field(default_factory=lambda: time.time_ns() // 1_000_000)
    schema_version: int = SCHEMA_VERSION
    correlation_id: str | None = None
    causation_id: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    extensions: Mapping[str, bytes] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _REQUIRED_TEXT:
            _text(name, getattr(self, name))
        for name in _OPTIONAL_TEXT:
            _text(name, getattr(self, name), optional=True)
        _integer("time_ms", self.time_ms, 0)
        _integer("schema_version", self.schema_version, 1)
        if not isinstance(self.payload, (bytes, bytearray, memoryview)):
            raise EnvelopeError("payload", f"must be bytes, not {type(self.payload).__name__} "
                                           "(encode it first, e.g. json.dumps(...).encode())")
        if self.headers.__class__ is not dict and not isinstance(self.headers, Mapping):
            raise EnvelopeError("headers", f"must be a mapping of str to str, not {type(self.headers).__name__}")
        for name, value in self.headers.items():
            if not isinstance(name, str) or not name:
                raise EnvelopeError("headers", f"header names must be non-empty strings, not {name!r}")
            if name.startswith(PREFIX):
                raise EnvelopeError("headers", f"header {name!r} uses the envelope's reserved prefix {PREFIX!r}")
            if not isinstance(value, str):
                raise EnvelopeError(f"headers[{name!r}]", f"must be a string, not {type(value).__name__}")
            _utf8_encodable(f"headers[{name!r}]", value)
            _utf8_encodable("headers", name)
        if self.extensions.__class__ is not dict and not isinstance(self.extensions, Mapping):
            raise EnvelopeError("extensions", f"must be a mapping, not {type(self.extensions).__name__}")
        for name, raw in self.extensions.items():
            if not isinstance(name, str) or not name.startswith(PREFIX) or name in _KNOWN:
                raise EnvelopeError("extensions", f"{name!r} is not an unknown {PREFIX}* header")
            if not isinstance(raw, bytes):
                raise EnvelopeError(f"extensions[{name!r}]", f"must be bytes, not {type(raw).__name__}")

    def caused(self, event_type: str, source: str, payload: bytes = b"") -> "Envelope":
        """A new event caused by this one: same correlation id (or this id), causation id = this id."""
        return Envelope(type=event_type, source=source, payload=payload,
                        correlation_id=self.correlation_id or self.id, causation_id=self.id)


def encode(envelope: Envelope, version: int | None = None) -> tuple[bytes, KafkaHeaders]:
    """The Kafka value and headers of ``envelope``.

    By default the fields of the current schema are written, under the envelope's
    own schema_version if it is newer (a message relayed from a newer producer
    keeps its version and, through ``extensions``, its unknown fields). An explicit
    older ``version`` writes what a producer of that version wrote (for the
    compatibility tests); extensions are always written back.
    """
    fields = FIELDS_BY_VERSION.get(version if version is not None else SCHEMA_VERSION)
    if fields is None:
        raise EnvelopeError("schema_version", f"cannot write version {version}; known: {sorted(FIELDS_BY_VERSION)}")
    if version is None:
        version = max(envelope.schema_version, SCHEMA_VERSION)
    headers: KafkaHeaders = []
    for name in fields:
        value = version if name == "schema_version" else getattr(envelope, name)
        if value is not None:
            headers.append((PREFIX + name, str(value).encode()))
    headers.extend(envelope.extensions.items())
    headers.extend((name, value.encode()) for name, value in envelope.headers.items())
    return bytes(envelope.payload), headers


def decode(value: bytes | None, headers: Iterable[tuple[str, bytes]] | None) -> Envelope:
    """The Envelope of a Kafka record; EnvelopeError naming the field for anything malformed.

    Validates as the constructor does, in one pass over the headers (a strictly
    decoded UTF-8 string holds no surrogate, so the text is not checked twice)."""
    if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
        raise EnvelopeError("payload", f"the record value must be bytes, not {type(value).__name__}")
    fields: dict[str, str] = {}
    extensions: dict[str, bytes] = {}
    user: dict[str, str] = {}
    header_field = _HEADER_FIELD
    for item in headers or ():
        if item.__class__ is not tuple and not isinstance(item, (tuple, list)) or len(item) != 2:
            raise EnvelopeError("headers", f"each header must be a (name, bytes) pair, not {item!r:.80}")
        name, raw = item
        if name.__class__ is not str:
            raise EnvelopeError("headers", f"header name must be a string, not {type(name).__name__}")
        field = header_field.get(name)
        where = field if field is not None else f"headers[{name!r}]"
        if raw is None:
            raw = b""
        elif raw.__class__ is not bytes and not isinstance(raw, (bytes, bytearray)):
            raise EnvelopeError(where, f"header value must be bytes, not {type(raw).__name__}")
        if field is not None:
            if field in fields:
                raise EnvelopeError(field, f"header {name!r} appears more than once")
            fields[field] = _utf8(field, raw)
        elif name in extensions or name in user:
            raise EnvelopeError(where, f"header {name!r} appears more than once")
        else:
            _utf8_encodable("headers", name)
            if name.startswith(PREFIX):
                extensions[name] = bytes(raw)
            elif not name:
                raise EnvelopeError("headers", "header names must be non-empty strings, not ''")
            else:
                user[name] = _utf8(where, raw)
    for field in _REQUIRED_TEXT:
        text = fields.get(field)
        if text is None:
            raise EnvelopeError(field, f"is missing (no {PREFIX + field!r} header)")
        if not text:
            raise EnvelopeError(field, "must not be empty")
    for field in _OPTIONAL_TEXT:
        if fields.get(field) == "":
            raise EnvelopeError(field, "must not be empty")
    numbers: dict[str, int] = {}
    for field, minimum in _MINIMUM.items():
        text = fields.get(field)
        if text is None:
            raise EnvelopeError(field, f"is missing (no {PREFIX + field!r} header)")
        if not text.isascii() or not text.isdigit():
            raise EnvelopeError(field, f"must be a decimal integer, not {text!r:.40}")
        number = numbers[field] = int(text)
        if number < minimum:
            raise EnvelopeError(field, f"must be at least {minimum}, not {number}")
    if value is None:
        raise EnvelopeError("payload", "the record has no value (a tombstone is not an event)")
    envelope = _new_envelope(Envelope)
    for name, field_value in (("id", fields["id"]), ("type", fields["type"]), ("source", fields["source"]),
                              ("payload", bytes(value)), ("time_ms", numbers["time_ms"]),
                              ("schema_version", numbers["schema_version"]),
                              ("correlation_id", fields.get("correlation_id")),
                              ("causation_id", fields.get("causation_id")), ("headers", user),
                              ("extensions", extensions)):
        _set(envelope, name, field_value)
    return envelope


def _utf8(field: str, raw: bytes) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as err:
        raise EnvelopeError(field, f"is not valid UTF-8 ({err.reason} at byte {err.start})") from None


def envelope_id(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """Just the id header of a record (None if absent or not UTF-8): what read-back and dedup need."""
    for name, raw in headers or ():
        if name == PREFIX + "id":
            try:
                return bytes(raw).decode("utf-8") or None
            except (UnicodeDecodeError, TypeError):
                return None
    return None
