"""postgres (our extension): fail or slow the statements that match a pattern, in the
PostgreSQL wire protocol, leaving every session in a state its client can go on from.

Attributes: ``pattern`` (a regular expression searched, case-insensitively, in each
statement's SQL; "" matches every statement), ``sqlstate`` ("" for none: latency
only), ``message`` ("" for the server's usual text for that SQLSTATE), ``latency``
(ms, before a matching statement is sent on or failed), ``probability`` (per
matching statement; ``toxicity`` is per connection, as for every toxic).

Which statement: a simple Query whose text matches, and in the extended protocol
a Bind of a prepared statement whose Parse matched (statement names are
followed, so a statement a client prepared once and caches is failed on every
execution, not only the first). A toxic added to a session under way asks the
server what the session prepared before (``pg_prepared_statements``, once, at the
first Bind of a statement it has not seen; the client's messages wait for the
answer, which the client never sees).

How it fails, by SQLSTATE:

* 57P01 admin_shutdown: a FATAL ErrorResponse and the connection closes, as when
  an administrator terminates the backend;
* 53300 too_many_connections: at startup, a FATAL ErrorResponse in answer to the
  StartupMessage (the server never sees it), then the connection closes; no
  statement is failed;
* any other (40001 serialization_failure, 40P01 deadlock_detected, 57014
  query_canceled, ...): the statement is replaced by one that makes the *server*
  raise that SQLSTATE and message, so the server answers with its own
  ErrorResponse and ReadyForQuery and its transaction state is really the failed
  one (in a transaction block: 'E' until ROLLBACK, on both sides). In the extended
  protocol the batch's messages from the failing Bind to its Sync are swallowed
  and a Sync plus that statement go in their place; the responses side drops the
  extra ReadyForQuery, and drops the second error when the batch had already failed
  on its own. The client sees ErrorResponse then ReadyForQuery, as for an error at
  Bind.

With an SSLRequest or GSSENCRequest the server accepts (answers 'S' / 'G'), the
session is encrypted: the toxic steps aside for that connection and logs it. A
refused request ('N') and the plaintext session after it are handled as usual.

The toxic runs on both directions of every connection whatever ``stream`` it was
created with (see ``Stub``); messages longer than 1 MiB pass unread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections import deque
from typing import Any, ClassVar

from ..stream import Chunk, Stub
from . import _pg_wire as wire
from .base import Toxic

log = logging.getLogger("lab.proxy")

DEFAULT_MESSAGES = {
    "40001": "could not serialize access due to concurrent update",
    "40P01": "deadlock detected",
    "57P01": "terminating connection due to administrator command",
    "53300": "sorry, too many clients already",
    "57014": "canceling statement due to user request",
}
_SQLSTATE = re.compile(r"[0-9A-Z]{5}\Z")
_FATAL_STATES = ("57P01", "53300")
#: removal waits at most this long for the server's answer to a statement the toxic rewrote (see ``settle``)
SETTLE_S = 2.0
#: Message types whose content the requests side reads; others pass as soon as their header is in.
_READ_REQUESTS = frozenset((b"", b"Q", b"P", b"B", b"C"))
_READ_RESPONSES = frozenset((b"E", b"Z", b"D"))


@dataclasses.dataclass
class Reply:
    """The server's answer up to and including one ReadyForQuery."""

    drop_ready: bool = False  # the ReadyForQuery of a Sync the toxic added
    drop_error_if_failed: bool = False  # the toxic's error, when the batch already failed


@dataclasses.dataclass
class Lookup:
    """The answer to the toxic's own query of ``pg_prepared_statements``: read, never passed on."""


@dataclasses.dataclass
class SslAnswer:
    """The one-byte answer to an SSLRequest or GSSENCRequest."""


@dataclasses.dataclass
class Answer:
    """Bytes the toxic sends the client itself, in turn; ``close`` ends the connection after."""

    data: bytes
    close: bool


@dataclasses.dataclass
class Session:
    """Per-connection state of both sides; survives updates of the toxic."""

    # what the client is owed, in order
    plan: deque[Reply | Lookup | SslAnswer | Answer] = dataclasses.field(default_factory=deque)
    stepped_aside: bool = False
    dead: bool = False  # the toxic ended the session: client bytes are dropped
    retiring: bool = False  # the toxic is being removed: no new statement is failed
    # requests side
    req_buf: bytearray = dataclasses.field(default_factory=bytearray)
    startup: bool = True
    req_raw: int = 0  # bytes of a long message still to pass unread
    req_raw_drop: bool = False
    swallowing: str = ""  # "sqlstate\0message" while a failed batch runs to its Sync
    statements: dict[str, str] = dataclasses.field(default_factory=dict)
    must_look_up: bool = False  # joined under way: ask the server what was prepared before
    looking_up: bool = False  # asked; client messages wait for the answer
    delay_due: bool = False  # the message at the head of req_buf matched and waits its latency
    delay_done: bool = False  # ... and has waited it
    # responses side
    resp_buf: bytearray = dataclasses.field(default_factory=bytearray)
    resp_raw: int = 0
    failed_in_batch: bool = False


@dataclasses.dataclass(frozen=True)
class Postgres(Toxic):
    type_name: ClassVar[str] = "postgres"
    go_struct: ClassVar[str] = "PostgresToxic"
    go_types: ClassVar[dict[str, str]] = {
        "pattern": "string", "sqlstate": "string", "message": "string",
        "latency": "int64", "probability": "float32",
    }

    pattern: str = ""
    sqlstate: str = "40001"
    message: str = ""
    latency: int = 0  # milliseconds
    probability: float = 1.0

    def check(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as err:
            raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {err}") from None
        if self.sqlstate and not _SQLSTATE.match(self.sqlstate):
            raise ValueError(f"sqlstate {self.sqlstate!r} is not five digits or capital letters")
        if "$lab_toxic$" in self.message:
            raise ValueError("message may not contain '$lab_toxic$'")
        if self.latency < 0:
            raise ValueError(f"latency {self.latency} ms is negative")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability {self.probability} is not between 0 and 1")

    def new_state(self, mid_stream: bool = False) -> Session:
        """A session's books; joining one under way, assume it is past start-up, between messages."""
        return Session(startup=not mid_stream, must_look_up=mid_stream)

    # -- decisions ---------------------------------------------------------------------------

    def _hits(self, stub: Stub, sql: str | None) -> bool:
        if sql is None or not stub.active or self.sqlstate == "53300":
            return False
        if self.pattern and re.search(self.pattern, sql, re.IGNORECASE) is None:
            return False
        return self.probability >= 1.0 or stub.rng.random() < self.probability

    def _text(self) -> str:
        return self.message or DEFAULT_MESSAGES.get(self.sqlstate, f"injected by lab.proxy ({self.sqlstate})")

    def _fatal(self, stub: Stub, st: Session) -> bytes:
        """End the session with a FATAL error the client gets in turn; drop what it sends after."""
        st.dead = True
        st.plan.append(Answer(wire.error_response("FATAL", self.sqlstate, self._text()), close=True))
        stub.nudge_peer()
        return b""

    # -- client to server --------------------------------------------------------------------

    async def pipe_requests(self, stub: Stub) -> None:
        st: Session = stub.state
        while True:
            while st.delay_due:  # a matching statement waits its latency before it is handled
                await stub.sleep(self.latency / 1000.0)  # Interrupted: it is decided again
                st.delay_due, st.delay_done = False, True
                self._requests(stub, st, time.monotonic())
            chunk = await stub.read()
            if chunk is None:
                self.cleanup(stub)
                stub.close()
                return
            self._take_request(stub, st, chunk)

    def feed_requests(self, stub: Stub, chunk: Any) -> bool:
        """One client chunk handled at once (the synchronous path; see Channel.handler), unless
        a delay is due or could become due: those need the toxic's task."""
        if not isinstance(chunk, Chunk) or self.latency > 0 or stub.state.delay_due:
            return False
        self._take_request(stub, stub.state, chunk)
        return True

    def _take_request(self, stub: Stub, st: Session, chunk: Chunk) -> None:
        if st.dead:
            return
        if st.stepped_aside:
            stub.write(chunk)
            return
        data = chunk.data
        if not data:  # a nudge: the statements looked up are in
            if st.req_buf and not st.looking_up:
                self._requests(stub, st, chunk.ts)
            return
        if st.req_raw:
            n = min(len(data), st.req_raw)
            if not st.req_raw_drop:
                stub.write(Chunk(data[:n], chunk.ts))
            st.req_raw -= n
            data = data[n:]
        if data:
            st.req_buf += data
            self._requests(stub, st, chunk.ts)

    def _requests(self, stub: Stub, st: Session, ts: float) -> None:
        """Handle the whole client messages in the buffer; stops early at a matching statement
        whose latency is due (``st.delay_due``: the task sleeps, then calls this again)."""
        buf = st.req_buf
        pos = run = 0  # buf[run:pos] goes on unchanged
        while True:
            head = wire.frame_at(buf, st.startup, pos)
            if head is None:
                break
            kind, end = head
            whole = end <= len(buf)
            if not whole and kind in _READ_REQUESTS and end - pos <= wire.MAX_HELD_BYTES:
                break  # wait for the rest
            message = bytes(buf[pos:end]) if whole and kind in _READ_REQUESTS else None
            if st.looking_up:
                break
            if (st.must_look_up and kind == b"B" and message is not None and not st.swallowing
                    and wire.bind_statement(message) not in st.statements):
                # Prepared before this toxic joined: ask the server (pg_prepared_statements is
                # per session), hold the client's messages until the answer is read.
                st.must_look_up = False
                st.looking_up = True
                st.plan.append(Lookup())
                if run < pos:
                    stub.write(Chunk(bytes(buf[run:pos]), ts))
                stub.write(Chunk(wire.query(wire.PREPARED_STATEMENTS), ts))
                run = pos
                break
            if st.delay_done:  # this message was decided (a hit) and has waited its latency
                st.delay_done = False
                hit = True
            else:
                hit = self._request_hits(stub, st, kind, message)
                if hit and self.latency > 0:
                    st.delay_due = True
                    break
            out = self._on_request(stub, st, kind, message, hit)
            if not whole:  # a long message: pass (or drop) the rest unread
                st.req_raw, st.req_raw_drop = end - len(buf), out == b""
                if out is None:
                    pos = len(buf)
                else:
                    if run < pos:
                        stub.write(Chunk(bytes(buf[run:pos]), ts))
                    pos = run = len(buf)
                break
            if out is None:
                pos = end
                continue
            if run < pos:
                stub.write(Chunk(bytes(buf[run:pos]), ts))
            if out:
                stub.write(Chunk(out, ts))
            pos = run = end
            if st.dead or st.stepped_aside:
                break
        if run < pos:
            stub.write(Chunk(bytes(buf[run:pos]), ts))
        del buf[:pos]
        if st.dead:
            buf.clear()

    def _request_hits(self, stub: Stub, st: Session, kind: bytes, message: bytes | None) -> bool:
        if message is None or st.swallowing or st.retiring:
            return False
        if kind == b"":
            code = wire.startup_code(message)
            return (self.sqlstate == "53300" and stub.active and code == wire.PROTOCOL_3
                    and (self.probability >= 1.0 or stub.rng.random() < self.probability))
        if kind == b"Q":
            return self._hits(stub, wire.query_text(message))
        if kind == b"B":
            return self._hits(stub, st.statements.get(wire.bind_statement(message)))
        return False

    def _on_request(self, stub: Stub, st: Session, kind: bytes, message: bytes | None, hit: bool) -> bytes | None:
        """Keep the session's books for one client message; what to send instead (None: itself)."""
        if kind == b"":
            code = wire.startup_code(message) if message is not None else 0
            if code in (wire.SSL_REQUEST, wire.GSSENC_REQUEST):
                st.plan.append(SslAnswer())
                return None
            if code == wire.CANCEL_REQUEST:
                return None
            st.startup = False
            if hit:
                return self._fatal(stub, st)
            st.plan.append(Reply())
            return None
        if st.swallowing:
            if kind != b"S":
                return b""
            sqlstate, _, text = st.swallowing.partition("\0")
            st.swallowing = ""
            st.plan.append(Reply(drop_ready=True))
            st.plan.append(Reply(drop_error_if_failed=True))
            return wire.SYNC + wire.query(wire.raise_statement(sqlstate, text))
        if kind == b"Q":
            if hit and self.sqlstate in _FATAL_STATES:
                return self._fatal(stub, st)
            st.plan.append(Reply())
            if hit and self.sqlstate:
                return wire.query(wire.raise_statement(self.sqlstate, self._text()))
            return None
        if kind in (b"S", b"F"):
            st.plan.append(Reply())
            return None
        if kind == b"P" and message is not None:
            name, sql = wire.parse_fields(message)
            st.statements[name] = sql
        elif kind == b"C" and message is not None:
            target, name = wire.close_target(message)
            if target == b"S":
                st.statements.pop(name, None)
        elif kind == b"B" and hit and self.sqlstate:
            if self.sqlstate in _FATAL_STATES:
                return self._fatal(stub, st)
            st.swallowing = self.sqlstate + "\0" + self._text()
            return b""
        return None

    # -- server to client --------------------------------------------------------------------

    async def pipe_responses(self, stub: Stub) -> None:
        st: Session = stub.state
        while not stub.closed:
            if self._answer(stub, st):
                return
            chunk = await stub.read()
            if chunk is None:
                self.cleanup(stub)
                stub.close()
                return
            self.feed_responses(stub, chunk)

    def feed_responses(self, stub: Stub, chunk: Any) -> bool:
        """One server chunk (or a nudge: answers are due) handled at once."""
        if not isinstance(chunk, Chunk):
            return False
        st: Session = stub.state
        data = chunk.data
        if not data:
            self._answer(stub, st)
            return True
        if st.stepped_aside:
            stub.write(chunk)
            return True
        if st.resp_raw:
            n = min(len(data), st.resp_raw)
            stub.write(Chunk(data[:n], chunk.ts))
            st.resp_raw -= n
            data = data[n:]
        if data:
            st.resp_buf += data
            self._responses(stub, st, chunk.ts)
        return True

    def _answer(self, stub: Stub, st: Session) -> bool:
        """Send the answers now due; True when one of them closed the connection."""
        while st.plan and isinstance(answer := st.plan[0], Answer):
            st.plan.popleft()
            stub.write(Chunk(answer.data, 0.0))
            if answer.close:
                stub.close()
                return True
        return False

    def _responses(self, stub: Stub, st: Session, ts: float) -> bool:
        buf = st.resp_buf
        pos = run = 0
        closed = False
        while True:
            if st.plan and isinstance(st.plan[0], SslAnswer):
                if pos >= len(buf):
                    break
                st.plan.popleft()
                if buf[pos] in b"SG":  # pos < len(buf): the one-byte answer is there
                    st.stepped_aside = True
                    log.warning("postgres toxic: the client negotiated encryption; stepping aside for this "
                                "connection (the toxic reads plaintext only)")
                    pos = len(buf)
                    break
                pos += 1
                continue
            if st.plan and isinstance(st.plan[0], Answer):
                if run < pos:
                    stub.write(Chunk(bytes(buf[run:pos]), ts))
                run = pos
                if self._answer(stub, st):
                    closed = True
                    break
            head = wire.frame_at(buf, False, pos)
            if head is None:
                break
            kind, end = head
            if end > len(buf):
                if kind in _READ_RESPONSES and end - pos <= wire.MAX_HELD_BYTES:
                    break
                st.resp_raw = end - len(buf)  # a long message: pass the rest unread
                pos = len(buf)
                break
            if st.plan and isinstance(st.plan[0], Lookup):
                if kind == b"D":
                    row = wire.data_row(bytes(buf[pos:end]))
                    if len(row) == 2 and row[0] is not None and row[1] is not None:
                        st.statements.setdefault(row[0], row[1])
                elif kind == b"Z":
                    st.plan.popleft()
                    st.looking_up = False
                    stub.nudge_peer()
                if run < pos:
                    stub.write(Chunk(bytes(buf[run:pos]), ts))
                pos = run = end
                continue
            drop = False
            reply = st.plan[0] if st.plan and isinstance(st.plan[0], Reply) else None
            if kind == b"E":
                if reply is not None and reply.drop_error_if_failed and st.failed_in_batch:
                    drop = True
                st.failed_in_batch = True
            elif kind == b"Z" and reply is not None:
                st.plan.popleft()
                drop = reply.drop_ready
                if not drop:
                    st.failed_in_batch = False
            if drop:
                if run < pos:
                    stub.write(Chunk(bytes(buf[run:pos]), ts))
                run = end
            pos = end
        if run < pos:
            stub.write(Chunk(bytes(buf[run:pos]), ts))
        del buf[:pos]
        return closed

    # -- removal -----------------------------------------------------------------------------

    @staticmethod
    def _in_flight(st: Session) -> bool:
        """A rewrite not yet answered: a batch still swallowed up to its Sync, a ReadyForQuery or error the
        responses side must drop, or a lookup whose answer the client must not see."""
        return bool(st.swallowing) or st.looking_up or any(
            isinstance(item, Lookup) or (isinstance(item, Reply) and (item.drop_ready or item.drop_error_if_failed))
            for item in st.plan)

    async def settle(self, stub: Stub) -> None:
        """Before the toxic leaves a live connection: fail no new statement, and wait until what it rewrote has
        been answered, so the session is handed over where client and server agree (removed mid-rewrite, the
        server's extra ReadyForQuery would reach the client and desync it). Bounded by SETTLE_S: a server that
        has not answered by then (paused, partitioned) gets the connection closed, as a client sees a
        connection die, never a desynced one."""
        st = stub.state
        if not isinstance(st, Session):
            return
        st.retiring = True
        deadline = time.monotonic() + SETTLE_S
        while self._in_flight(st) and not stub.closed and not st.dead:
            if time.monotonic() >= deadline:
                log.warning("postgres toxic: removed with a rewritten statement unanswered for %.1fs: closing the "
                            "connection rather than desyncing it", SETTLE_S)
                stub.close()
                return
            await asyncio.sleep(0.005)

    def cleanup(self, stub: Stub) -> None:
        """Pass on what this side holds: nothing a client is owed is lost when the toxic goes.

        Answers still queued behind server replies go now (out of turn, but a client
        waiting for one would otherwise wait forever).
        """
        st: Session = stub.state
        if stub.role == "requests":
            if st.req_buf and not st.dead:
                stub.write(Chunk(bytes(st.req_buf), 0.0))
            st.req_buf.clear()
            return
        if st.resp_buf:
            stub.write(Chunk(bytes(st.resp_buf), 0.0))
            st.resp_buf.clear()
        for item in list(st.plan):
            if isinstance(item, Answer):
                stub.write(Chunk(item.data, 0.0))
                if item.close:
                    stub.close()
                    break
        st.plan.clear()
