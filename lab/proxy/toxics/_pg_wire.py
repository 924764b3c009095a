"""Just enough of the PostgreSQL frontend/backend protocol (version 3) for the postgres toxic.

Messages are framed, never fully decoded: a typed message is one type byte and an
Int32 length that counts itself; a startup-phase message (StartupMessage,
SSLRequest, GSSENCRequest, CancelRequest) has no type byte. ``frame_at`` reads a
header with ``struct.unpack_from`` and copies nothing, so runs of messages that
need no change are passed on as one slice.
"""

from __future__ import annotations

import struct

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608

#: The longest message this toxic will hold to look at: longer ones pass through unread.
MAX_HELD_BYTES = 16 * 1024 * 1024

_INT32 = struct.Struct("!i")
_HEADER = struct.Struct("!ci")

SYNC = b"S\x00\x00\x00\x04"


def frame_at(buf: bytes | bytearray, startup: bool, pos: int) -> tuple[bytes, int] | None:
    """(type, end) of the message at ``pos`` once its header is in ``buf`` (else ``None``);
    the message is whole when ``end <= len(buf)``. A startup-phase message (no type
    byte) has type ``b""``. Raises ValueError for a length no message can have.
    """
    have = len(buf) - pos
    if startup:
        if have < 4:
            return None
        length = _INT32.unpack_from(buf, pos)[0]
        kind = b""
        end = pos + length
    else:
        if have < 5:
            return None
        kind, length = _HEADER.unpack_from(buf, pos)
        end = pos + 1 + length
    if length < 4:
        raise ValueError(f"bad message length {length} for type {kind!r}")
    return kind, end


def startup_code(message: bytes) -> int:
    return _INT32.unpack_from(message, 4)[0] if len(message) >= 8 else 0


def cstrings(message: bytes, offset: int, count: int) -> list[str]:
    """``count`` NUL-terminated strings from ``offset`` (text decoded leniently)."""
    out = []
    for _ in range(count):
        end = message.index(b"\x00", offset)
        out.append(message[offset:end].decode("utf-8", "replace"))
        offset = end + 1
    return out


def query_text(message: bytes) -> str:
    """The SQL of a Query ('Q') message."""
    return cstrings(message, 5, 1)[0]


def parse_fields(message: bytes) -> tuple[str, str]:
    """(statement name, SQL) of a Parse ('P') message."""
    name, sql = cstrings(message, 5, 2)
    return name, sql


def bind_statement(message: bytes) -> str:
    """The prepared statement a Bind ('B') message binds (its portal name comes first)."""
    return cstrings(message, 5, 2)[1]


def close_target(message: bytes) -> tuple[bytes, str]:
    """(b'S' statement | b'P' portal, name) of a Close ('C') message."""
    return message[5:6], cstrings(message, 6, 1)[0]


def ready_status(message: bytes) -> bytes:
    """The transaction status of a ReadyForQuery ('Z'): b'I', b'T' or b'E'."""
    return message[5:6]


def data_row(message: bytes) -> list[str | None]:
    """The text columns of a DataRow ('D')."""
    count = struct.unpack_from("!h", message, 5)[0]
    offset = 7
    out: list[str | None] = []
    for _ in range(count):
        length = _INT32.unpack_from(message, offset)[0]
        offset += 4
        if length < 0:
            out.append(None)
            continue
        out.append(message[offset:offset + length].decode("utf-8", "replace"))
        offset += length
    return out


#: What a session has prepared, asked of the server when the toxic joins a session under way.
PREPARED_STATEMENTS = "SELECT name, statement FROM pg_prepared_statements"


def query(sql: str) -> bytes:
    body = sql.encode("utf-8") + b"\x00"
    return b"Q" + _INT32.pack(len(body) + 4) + body


def error_response(severity: str, sqlstate: str, message: str) -> bytes:
    """An ErrorResponse with the fields every client reads: S, V, C, M."""
    fields = b"".join(
        code + value.encode("utf-8") + b"\x00"
        for code, value in ((b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", message))
    ) + b"\x00"
    return b"E" + _INT32.pack(len(fields) + 4) + fields


def raise_statement(sqlstate: str, message: str) -> str:
    """A statement that makes the server itself raise ``sqlstate`` with ``message``.

    The server then answers with its own ErrorResponse and ReadyForQuery, so the
    transaction status the client sees is the server's real one (a statement that
    fails inside a transaction block leaves it failed, on both sides).
    """
    quoted = message.replace("'", "''")
    return (
        "DO $lab_toxic$ BEGIN RAISE EXCEPTION USING ERRCODE = '"
        + sqlstate + "', MESSAGE = '" + quoted + "'; END $lab_toxic$"
    )
