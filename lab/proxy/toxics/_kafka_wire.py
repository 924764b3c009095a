"""Just enough of the Kafka protocol for the kafka toxic: framing, headers, and the bodies of
Produce (key 0, v0-8), Fetch (key 1, v0-11) and Metadata (key 3, v0-8) requests and
responses, the non-flexible versions (the ones aiokafka uses: Produce <= 8, Fetch <= 11,
Metadata <= 5), written from the protocol's published message definitions.

A schema is a list of ``(name, type)``; a type is a primitive name (``int8`` ...
``int64``, ``string``, ``nstring`` nullable, ``bytes`` nullable), ``("array", schema)``,
``("narray", schema)`` (nullable), or ``("array", "int32")`` for an array of a primitive.
``decode`` gives nested dicts, ``encode`` writes them back byte for byte.
"""

from __future__ import annotations

import struct
from typing import Any

PRODUCE, FETCH, METADATA = 0, 1, 3
API_NAMES = {"produce": PRODUCE, "fetch": FETCH, "metadata": METADATA}
#: The highest non-flexible version of each key this module knows.
MAX_VERSION = {PRODUCE: 8, FETCH: 11, METADATA: 8}

ERROR_CODES = {
    "NONE": 0,
    "UNKNOWN_TOPIC_OR_PARTITION": 3,
    "LEADER_NOT_AVAILABLE": 5,
    "NOT_LEADER_OR_FOLLOWER": 6,
    "REQUEST_TIMED_OUT": 7,
    "NOT_ENOUGH_REPLICAS": 19,
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND": 20,
}

_FIXED = {"int8": struct.Struct("!b"), "int16": struct.Struct("!h"), "int32": struct.Struct("!i"),
          "int64": struct.Struct("!q")}
_I16, _I32 = _FIXED["int16"], _FIXED["int32"]

Schema = list[tuple[str, Any]]


def _arr(schema: Any) -> tuple[str, Any]:
    return ("array", schema)


# -- requests ---------------------------------------------------------------------------------


def produce_request(version: int) -> Schema:
    partition = [("index", "int32"), ("records", "bytes")]
    body: Schema = [("transactional_id", "nstring")] if version >= 3 else []
    return body + [("acks", "int16"), ("timeout_ms", "int32"),
                   ("topic_data", _arr([("name", "string"), ("partition_data", _arr(partition))]))]


def fetch_request(version: int) -> Schema:
    partition: Schema = [("partition", "int32")]
    if version >= 9:
        partition.append(("current_leader_epoch", "int32"))
    partition.append(("fetch_offset", "int64"))
    if version >= 5:
        partition.append(("log_start_offset", "int64"))
    partition.append(("partition_max_bytes", "int32"))
    body: Schema = [("replica_id", "int32"), ("max_wait_ms", "int32"), ("min_bytes", "int32")]
    if version >= 3:
        body.append(("max_bytes", "int32"))
    if version >= 4:
        body.append(("isolation_level", "int8"))
    if version >= 7:
        body += [("session_id", "int32"), ("session_epoch", "int32")]
    body.append(("topics", _arr([("topic", "string"), ("partitions", _arr(partition))])))
    if version >= 7:
        body.append(("forgotten_topics_data", _arr([("topic", "string"), ("partitions", ("array", "int32"))])))
    if version >= 11:
        body.append(("rack_id", "string"))
    return body


def metadata_request(version: int) -> Schema:
    body: Schema = [("topics", ("narray" if version >= 1 else "array", [("name", "string")]))]
    if version >= 4:
        body.append(("allow_auto_topic_creation", "int8"))
    if version >= 8:
        body += [("include_cluster_authorized_operations", "int8"),
                 ("include_topic_authorized_operations", "int8")]
    return body


# -- responses --------------------------------------------------------------------------------


def produce_response(version: int) -> Schema:
    partition: Schema = [("index", "int32"), ("error_code", "int16"), ("base_offset", "int64")]
    if version >= 2:
        partition.append(("log_append_time_ms", "int64"))
    if version >= 5:
        partition.append(("log_start_offset", "int64"))
    if version >= 8:
        partition += [("record_errors", _arr([("batch_index", "int32"), ("batch_index_error_message", "nstring")])),
                      ("error_message", "nstring")]
    body: Schema = [("responses", _arr([("name", "string"), ("partitions", _arr(partition))]))]
    if version >= 1:
        body.append(("throttle_time_ms", "int32"))
    return body


def fetch_response(version: int) -> Schema:
    partition: Schema = [("partition_index", "int32"), ("error_code", "int16"), ("high_watermark", "int64")]
    if version >= 4:
        partition.append(("last_stable_offset", "int64"))
        if version >= 5:
            partition.append(("log_start_offset", "int64"))
        partition.append(("aborted_transactions", ("narray", [("producer_id", "int64"), ("first_offset", "int64")])))
    if version >= 11:
        partition.append(("preferred_read_replica", "int32"))
    partition.append(("records", "bytes"))
    body: Schema = []
    if version >= 1:
        body.append(("throttle_time_ms", "int32"))
    if version >= 7:
        body += [("error_code", "int16"), ("session_id", "int32")]
    body.append(("responses", _arr([("topic", "string"), ("partitions", _arr(partition))])))
    return body


def metadata_response(version: int) -> Schema:
    broker: Schema = [("node_id", "int32"), ("host", "string"), ("port", "int32")]
    if version >= 1:
        broker.append(("rack", "nstring"))
    partition: Schema = [("error_code", "int16"), ("partition_index", "int32"), ("leader_id", "int32")]
    if version >= 7:
        partition.append(("leader_epoch", "int32"))
    partition += [("replica_nodes", ("array", "int32")), ("isr_nodes", ("array", "int32"))]
    if version >= 5:
        partition.append(("offline_replicas", ("array", "int32")))
    topic: Schema = [("error_code", "int16"), ("name", "string")]
    if version >= 1:
        topic.append(("is_internal", "int8"))
    topic.append(("partitions", _arr(partition)))
    if version >= 8:
        topic.append(("topic_authorized_operations", "int32"))
    body: Schema = [("throttle_time_ms", "int32")] if version >= 3 else []
    body.append(("brokers", _arr(broker)))
    if version >= 2:
        body.append(("cluster_id", "nstring"))
    if version >= 1:
        body.append(("controller_id", "int32"))
    body.append(("topics", _arr(topic)))
    if version >= 8:
        body.append(("cluster_authorized_operations", "int32"))
    return body


REQUESTS = {PRODUCE: produce_request, FETCH: fetch_request, METADATA: metadata_request}
RESPONSES = {PRODUCE: produce_response, FETCH: fetch_response, METADATA: metadata_response}


# -- codec ------------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def fixed(self, kind: str) -> int:
        codec = _FIXED[kind]
        value: int = codec.unpack_from(self.data, self.pos)[0]  # every _FIXED codec is an integer
        self.pos += codec.size
        return value

    def raw(self, length: int) -> bytes:
        if length < 0 or self.pos + length > len(self.data):
            raise ValueError("field runs past the end of the message")
        value = self.data[self.pos:self.pos + length]
        self.pos += length
        return value


def _decode_value(reader: _Reader, kind: Any) -> Any:
    if isinstance(kind, tuple):
        count = reader.fixed("int32")
        if count < 0:
            if kind[0] != "narray":
                raise ValueError("null array where none may be")
            return None
        return [_decode_value(reader, kind[1]) if isinstance(kind[1], str) else decode_fields(reader, kind[1])
                for _ in range(count)]
    if kind in _FIXED:
        return reader.fixed(kind)
    if kind in ("string", "nstring"):
        length = reader.fixed("int16")
        return None if length < 0 else reader.raw(length).decode("utf-8", "replace")
    if kind == "bytes":
        length = reader.fixed("int32")
        return None if length < 0 else reader.raw(length)
    raise ValueError(f"unknown field type {kind!r}")


def decode_fields(reader: _Reader, schema: Schema) -> dict[str, Any]:
    return {name: _decode_value(reader, kind) for name, kind in schema}


def decode(data: bytes, offset: int, schema: Schema) -> dict[str, Any]:
    """The body at ``data[offset:]``; raises ValueError when it does not fit ``schema`` exactly."""
    reader = _Reader(data, offset)
    try:
        value = decode_fields(reader, schema)
    except struct.error:
        raise ValueError("message ends inside a field") from None
    if reader.pos != len(data):
        raise ValueError(f"{len(data) - reader.pos} bytes left over after the body")
    return value


def _encode_value(out: list[bytes], kind: Any, value: Any) -> None:
    if isinstance(kind, tuple):
        if value is None:
            out.append(_I32.pack(-1))
            return
        out.append(_I32.pack(len(value)))
        for item in value:
            if isinstance(kind[1], str):
                _encode_value(out, kind[1], item)
            else:
                encode_fields(out, kind[1], item)
        return
    if kind in _FIXED:
        out.append(_FIXED[kind].pack(value))
    elif kind in ("string", "nstring"):
        if value is None:
            out.append(_I16.pack(-1))
        else:
            raw = value.encode("utf-8")
            out.append(_I16.pack(len(raw)) + raw)
    elif kind == "bytes":
        out.append(_I32.pack(-1) if value is None else _I32.pack(len(value)) + value)
    else:
        raise ValueError(f"unknown field type {kind!r}")


def encode_fields(out: list[bytes], schema: Schema, value: dict[str, Any]) -> None:
    for name, kind in schema:
        _encode_value(out, kind, value[name])


def encode(schema: Schema, value: dict[str, Any]) -> bytes:
    out: list[bytes] = []
    encode_fields(out, schema, value)
    return b"".join(out)


# -- frames and headers -----------------------------------------------------------------------


def frame_end(buf: bytes | bytearray, pos: int) -> int | None:
    """Where the size-prefixed frame at ``pos`` ends, once its size is in ``buf``."""
    if len(buf) - pos < 4:
        return None
    size: int = _I32.unpack_from(buf, pos)[0]
    if size < 0:
        raise ValueError(f"negative frame size {size}")
    return pos + 4 + size


def request_header(frame: bytes | bytearray, pos: int = 0) -> tuple[int, int, int, int] | None:
    """(api_key, api_version, correlation_id, body offset) of a request frame (v1 header:
    its client_id read; a flexible v2 header's tagged fields are not, so the body offset is
    only right for the non-flexible versions this module decodes)."""
    if len(frame) - pos < 14:
        return None
    api_key, version = struct.unpack_from("!hh", frame, pos + 4)
    correlation_id = _I32.unpack_from(frame, pos + 8)[0]
    client_id_length = _I16.unpack_from(frame, pos + 12)[0]
    return api_key, version, correlation_id, pos + 14 + max(client_id_length, 0)


def response_correlation_id(frame: bytes | bytearray, pos: int = 0) -> int | None:
    if len(frame) - pos < 8:
        return None
    correlation_id: int = _I32.unpack_from(frame, pos + 4)[0]
    return correlation_id


def response_frame(correlation_id: int, body: bytes) -> bytes:
    """A whole response frame with a v0 header (what every non-flexible response has)."""
    return _I32.pack(len(body) + 4) + _I32.pack(correlation_id) + body


def produce_acks(frame: bytes, body_offset: int, version: int) -> int:
    """A Produce request's ``acks`` (0: the broker sends no response at all)."""
    pos = body_offset
    if version >= 3:
        length = _I16.unpack_from(frame, pos)[0]
        pos += 2 + max(length, 0)
    acks: int = _I16.unpack_from(frame, pos)[0]
    return acks
