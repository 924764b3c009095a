"""kafka (our extension): answer chosen Kafka requests with an error, or throttle them, in the
Kafka protocol, keeping every connection's request/response pairing intact.

Attributes: ``api_keys`` (comma-separated: ``produce``, ``fetch``, ``metadata``, or
their numbers 0, 1, 3), ``error`` (a name such as ``NOT_LEADER_OR_FOLLOWER``,
``REQUEST_TIMED_OUT``, ``NOT_ENOUGH_REPLICAS``, ``LEADER_NOT_AVAILABLE``,
``UNKNOWN_TOPIC_OR_PARTITION``, or a number; ``NONE`` or "" for no error),
``forward`` (true: the request still reaches the broker, and the broker's response
comes back carrying the error - for Produce, *written but not acknowledged*;
false, the default: the broker never sees it and the toxic answers in its place;
with no error the request is always forwarded),
``throttle_time_ms`` (written into the responses it touches), ``probability``
(per matching request; ``toxicity`` is per connection, as for every toxic).

What a touched response carries: every partition's ``error_code`` (Produce, Fetch;
offsets -1, no records) or every topic's (Metadata), and ``throttle_time_ms``
where that version has it. An answer in the broker's place is built from the
request: the same topics and partitions (Metadata: the brokers from the last
Metadata response seen on this connection). Responses go back in request order
(clients match them by correlation id and order). A Produce with ``acks`` 0 gets
no response from a broker, so none is made up: not forwarded, it is lost.

Versions: the non-flexible ones (Produce 0-8, Fetch 0-11, Metadata 0-8, which
cover everything aiokafka sends); a request of a newer version passes untouched.
The toxic runs on both directions of every connection whatever ``stream`` it was
created with.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from typing import Any, ClassVar

from ..stream import Chunk, Stub
from . import _kafka_wire as wire
from .base import Toxic

log = logging.getLogger("lab.proxy")

#: The largest frame the toxic holds to read or rewrite; larger ones pass untouched.
MAX_HELD_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass
class Pending:
    """A forwarded request whose response is still to come."""

    correlation_id: int
    api_key: int
    version: int
    touch: bool  # rewrite the response


@dataclasses.dataclass
class Answer:
    """A response the toxic makes itself, sent in its turn."""

    data: bytes


@dataclasses.dataclass
class Conversation:
    plan: deque[Pending | Answer] = dataclasses.field(default_factory=deque)
    req_buf: bytearray = dataclasses.field(default_factory=bytearray)
    req_raw: int = 0
    resp_buf: bytearray = dataclasses.field(default_factory=bytearray)
    resp_raw: int = 0
    metadata: dict[str, Any] | None = None  # brokers etc. of the last Metadata response seen


def parse_api_keys(text: str) -> frozenset[int]:
    keys = set()
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        key = wire.API_NAMES.get(name)
        if key is None and name.isdigit() and int(name) in wire.API_NAMES.values():
            key = int(name)
        if key is None:
            raise ValueError(f"api key {part.strip()!r} is not one of produce, fetch, metadata (0, 1, 3)")
        keys.add(key)
    return frozenset(keys)


def parse_error(text: str) -> int:
    name = text.strip().upper()
    if name == "":
        return 0
    if name in wire.ERROR_CODES:
        return wire.ERROR_CODES[name]
    if name.lstrip("-").isdigit() and -32768 <= int(name) <= 32767:
        return int(name)
    raise ValueError(f"error {text!r} is neither a known Kafka error name ({', '.join(wire.ERROR_CODES)}) "
                     "nor a number")


@dataclasses.dataclass(frozen=True)
class Kafka(Toxic):
    type_name: ClassVar[str] = "kafka"
    go_struct: ClassVar[str] = "KafkaToxic"
    go_types: ClassVar[dict[str, str]] = {
        "api_keys": "string", "error": "string", "forward": "bool",
        "throttle_time_ms": "int64", "probability": "float32",
    }

    api_keys: str = "produce"
    error: str = "NOT_LEADER_OR_FOLLOWER"
    forward: bool = False
    throttle_time_ms: int = 0
    probability: float = 1.0
    # Derived in __post_init__; not attributes of the toxic (not in its JSON, equality or repr).
    _keys: frozenset[int] = dataclasses.field(init=False, repr=False, compare=False, default=frozenset())
    _error: int = dataclasses.field(init=False, repr=False, compare=False, default=0)
    _answers_metadata: bool = dataclasses.field(init=False, repr=False, compare=False, default=False)

    def check(self) -> None:
        if not parse_api_keys(self.api_keys):
            raise ValueError("api_keys names no API")
        parse_error(self.error)
        if not 0 <= self.throttle_time_ms <= 2**31 - 1:
            raise ValueError(f"throttle_time_ms {self.throttle_time_ms} is not between 0 and 2^31-1")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability {self.probability} is not between 0 and 1")

    def __post_init__(self) -> None:
        # Parsed once per configuration, not per chunk (check() reports bad values).
        try:
            keys, error = parse_api_keys(self.api_keys), parse_error(self.error)
        except ValueError:
            keys, error = frozenset(), 0
        object.__setattr__(self, "_keys", keys)
        object.__setattr__(self, "_error", error)
        # Only a toxic on Metadata may answer one itself (now or after an update): it keeps the
        # brokers of the last one seen; others never decode Metadata responses.
        object.__setattr__(self, "_answers_metadata", wire.METADATA in keys)

    def new_state(self, mid_stream: bool = False) -> Conversation:
        return Conversation()

    # -- client to broker --------------------------------------------------------------------

    async def pipe_requests(self, stub: Stub) -> None:
        while True:
            chunk = await stub.read()
            if chunk is None:
                self.cleanup(stub)
                stub.close()
                return
            self.feed_requests(stub, chunk)

    def feed_requests(self, stub: Stub, chunk: Any) -> bool:
        """One chunk from the client, handled at once (the synchronous path; see Channel.handler)."""
        if not isinstance(chunk, Chunk):
            return False
        st: Conversation = stub.state
        data = chunk.data
        if st.req_raw:
            n = min(len(data), st.req_raw)
            stub.write(Chunk(data[:n], chunk.ts))
            st.req_raw -= n
            data = data[n:]
        if data:
            st.req_buf += data
            self._requests(stub, st, self._keys, chunk.ts)
        return True

    def _requests(self, stub: Stub, st: Conversation, keys: frozenset[int], ts: float) -> None:
        buf = st.req_buf
        pos = run = 0
        while (end := wire.frame_end(buf, pos)) is not None:
            if end > len(buf) and end - pos <= MAX_HELD_BYTES:
                break
            header = wire.request_header(buf, pos)
            if end > len(buf):  # too long to hold: pass it untouched, expecting its response
                if header is not None:
                    st.plan.append(Pending(header[2], header[0], header[1], touch=False))
                st.req_raw = end - len(buf)
                pos = len(buf)
                break
            frame = bytes(buf[pos:end])
            header = wire.request_header(frame)
            if header is None:  # not a request this toxic can read: pass it on
                pos = end
                continue
            api_key, version, correlation_id, body_at = header
            known = api_key in wire.MAX_VERSION and version <= wire.MAX_VERSION[api_key]
            acks0 = api_key == wire.PRODUCE and known and wire.produce_acks(frame, body_at, version) == 0
            hit = (known and api_key in keys and stub.active
                   and (self.probability >= 1.0 or stub.rng.random() < self.probability))
            if hit and not self.forward and self._error != 0:
                if run < pos:
                    stub.write(Chunk(bytes(buf[run:pos]), ts))
                run = end
                if not acks0:
                    st.plan.append(Answer(self._answer(st, frame, api_key, version, correlation_id, body_at)))
                    stub.nudge_peer()
            elif not acks0:
                st.plan.append(Pending(correlation_id, api_key, version, touch=hit))
            pos = end
        if run < pos:
            stub.write(Chunk(bytes(buf[run:pos]), ts))
        del buf[:pos]

    # -- broker to client --------------------------------------------------------------------

    async def pipe_responses(self, stub: Stub) -> None:
        while True:
            self._send_answers(stub, stub.state)
            chunk = await stub.read()
            if chunk is None:
                self.cleanup(stub)
                stub.close()
                return
            self.feed_responses(stub, chunk)

    def feed_responses(self, stub: Stub, chunk: Any) -> bool:
        """One chunk from the broker (or a nudge: answers are due), handled at once."""
        if not isinstance(chunk, Chunk):
            return False
        st: Conversation = stub.state
        data = chunk.data
        if st.resp_raw:
            n = min(len(data), st.resp_raw)
            stub.write(Chunk(data[:n], chunk.ts))
            st.resp_raw -= n
            data = data[n:]
        if data:
            st.resp_buf += data
            self._responses(stub, st, chunk.ts)
        else:
            self._send_answers(stub, st)
        return True

    def _send_answers(self, stub: Stub, st: Conversation) -> None:
        while st.plan and isinstance(answer := st.plan[0], Answer):
            st.plan.popleft()
            stub.write(Chunk(answer.data, 0.0))

    def _pending_for(self, st: Conversation, correlation_id: int) -> Pending | None:
        """The request this response answers: the oldest still pending (skipping, with a log
        line, any the broker did not answer, which a well-behaved broker never does)."""
        for index, item in enumerate(st.plan):
            if isinstance(item, Pending) and item.correlation_id == correlation_id:
                for _ in range(index):
                    skipped = st.plan.popleft()
                    if isinstance(skipped, Pending):
                        log.warning("kafka toxic: no response to correlation id %d", skipped.correlation_id)
                st.plan.popleft()  # ``item``, now at the head
                return item
        return None

    def _responses(self, stub: Stub, st: Conversation, ts: float) -> None:
        buf = st.resp_buf
        pos = run = 0
        while (end := wire.frame_end(buf, pos)) is not None:
            if st.plan and isinstance(st.plan[0], Answer):
                if run < pos:
                    stub.write(Chunk(bytes(buf[run:pos]), ts))
                run = pos
                self._send_answers(stub, st)
            correlation_id = wire.response_correlation_id(buf, pos)
            if correlation_id is None:
                break
            head = next((item for item in st.plan if isinstance(item, Pending)), None)
            wants = head is not None and head.correlation_id == correlation_id and (
                head.touch or (head.api_key == wire.METADATA and self._answers_metadata))
            if end > len(buf):
                if wants and end - pos <= MAX_HELD_BYTES:
                    break
                self._pending_for(st, correlation_id)
                st.resp_raw = end - len(buf)
                pos = len(buf)
                break
            pending = self._pending_for(st, correlation_id)
            if pending is not None and wants:
                replaced = self._touched(st, bytes(buf[pos:end]), pending)
                if replaced is not None:
                    if run < pos:
                        stub.write(Chunk(bytes(buf[run:pos]), ts))
                    stub.write(Chunk(replaced, ts))
                    run = end
            pos = end
        if run < pos:
            stub.write(Chunk(bytes(buf[run:pos]), ts))
        del buf[:pos]
        self._send_answers(stub, st)

    # -- responses ---------------------------------------------------------------------------

    def _touched(self, st: Conversation, frame: bytes, pending: Pending) -> bytes | None:
        """The response with the error and throttle put in (``None``: unchanged)."""
        schema = wire.RESPONSES[pending.api_key](pending.version)
        try:
            body = wire.decode(frame, 8, schema)
        except ValueError as err:
            log.warning("kafka toxic: response to api key %d v%d not understood (%s); passed unchanged",
                        pending.api_key, pending.version, err)
            return None
        if pending.api_key == wire.METADATA and self._answers_metadata:
            st.metadata = body
        if not pending.touch:
            return None
        self._apply(body, pending.api_key, pending.version)
        return wire.response_frame(pending.correlation_id, wire.encode(schema, body))

    def _apply(self, body: dict[str, Any], api_key: int, version: int) -> None:
        error = self._error
        if "throttle_time_ms" in body:
            body["throttle_time_ms"] = self.throttle_time_ms
        if error == 0:
            return
        if api_key == wire.METADATA:
            for topic in body["topics"]:
                topic["error_code"] = error
            return
        for topic in body["responses"]:
            for partition in topic["partitions"]:
                partition["error_code"] = error
                for key in ("base_offset", "log_append_time_ms", "log_start_offset", "high_watermark",
                            "last_stable_offset"):
                    if key in partition:
                        partition[key] = -1
                if "records" in partition:
                    partition["records"] = b""
                if "aborted_transactions" in partition:
                    partition["aborted_transactions"] = None

    def _answer(self, st: Conversation, frame: bytes, api_key: int, version: int, correlation_id: int,
                body_at: int) -> bytes:
        """The response the broker would have sent, built from the request, with the error in."""
        request = wire.decode(frame, body_at, wire.REQUESTS[api_key](version))
        schema = wire.RESPONSES[api_key](version)
        body = _blank(schema)
        if api_key == wire.PRODUCE:
            body["responses"] = [
                {**_blank(schema_item(schema, "responses")), "name": topic["name"], "partitions": [
                    {**_blank(schema_item(schema_item(schema, "responses"), "partitions")), "index": p["index"]}
                    for p in topic["partition_data"]]}
                for topic in request["topic_data"]]
        elif api_key == wire.FETCH:
            body["responses"] = [
                {**_blank(schema_item(schema, "responses")), "topic": topic["topic"], "partitions": [
                    {**_blank(schema_item(schema_item(schema, "responses"), "partitions")),
                     "partition_index": p["partition"]}
                    for p in topic["partitions"]]}
                for topic in request["topics"]]
        else:
            known = st.metadata or {}
            for key in ("brokers", "cluster_id", "controller_id"):
                if key in body and key in known:
                    body[key] = known[key]
            body["topics"] = [
                {**_blank(schema_item(schema, "topics")), "name": topic["name"]}
                for topic in request["topics"] or []]
        self._apply(body, api_key, version)
        return wire.response_frame(correlation_id, wire.encode(schema, body))

    # -- removal -----------------------------------------------------------------------------

    def cleanup(self, stub: Stub) -> None:
        """Pass on what this side holds; answers still due go now."""
        st: Conversation = stub.state
        if stub.role == "requests":
            if st.req_buf:
                stub.write(Chunk(bytes(st.req_buf), 0.0))
                st.req_buf.clear()
            return
        if st.resp_buf:
            stub.write(Chunk(bytes(st.resp_buf), 0.0))
            st.resp_buf.clear()
        for item in st.plan:
            if isinstance(item, Answer):
                stub.write(Chunk(item.data, 0.0))
        st.plan.clear()


def schema_item(schema: wire.Schema, name: str) -> wire.Schema:
    """The element schema of the array field ``name``."""
    element: wire.Schema = dict(schema)[name][1]  # an array field's type is ("array", element schema)
    return element


def _blank(schema: wire.Schema) -> dict[str, Any]:
    """A value for ``schema``: numbers -1 (0 for flags, counts of bytes), empty arrays and strings."""
    out: dict[str, Any] = {}
    for name, kind in schema:
        if isinstance(kind, tuple):
            out[name] = None if kind[0] == "narray" else []
        elif kind == "int8":
            out[name] = 0
        elif kind == "int16":
            out[name] = 0
        elif kind in ("int32", "int64"):
            out[name] = 0 if name in ("throttle_time_ms", "session_id", "partition_index", "index") else -1
        elif kind == "string":
            out[name] = ""
        elif kind == "nstring":
            out[name] = None
        elif kind == "bytes":
            out[name] = b""
    return out
