"""The kafka toxic's schemas against aiokafka's own protocol classes, as an oracle: a body we
encode must decode in aiokafka and encode back to the same bytes, for every version aiokafka
has of Produce, Fetch and Metadata (requests and responses)."""

from __future__ import annotations

import importlib
import random

import pytest

from lab.proxy.toxics import _kafka_wire as wire

pytestmark = pytest.mark.unit

_CLASSES = {
    wire.PRODUCE: ("produce", "ProduceResponse_v{}", "ProduceRequestStruct_v{}", "ProduceRequest_v{}"),
    wire.FETCH: ("fetch", "FetchResponse_v{}", "FetchRequestStruct_v{}", "FetchRequest_v{}"),
    wire.METADATA: ("metadata", "MetadataResponse_v{}", "MetadataRequestStruct_v{}", "MetadataRequest_v{}"),
}


def sample(schema, rng: random.Random, depth: int = 0) -> dict:
    """A value for ``schema`` with every field set (arrays of 1-2 items, some nulls)."""
    out = {}
    for name, kind in schema:
        if isinstance(kind, tuple):
            if kind[0] == "narray" and rng.random() < 0.3:
                out[name] = None
            elif isinstance(kind[1], str):
                out[name] = [rng.randrange(100) for _ in range(rng.randrange(3))]
            else:
                out[name] = [sample(kind[1], rng, depth + 1) for _ in range(1 + rng.randrange(2))]
        elif kind == "int8":
            out[name] = rng.randrange(2)
        elif kind in ("int16", "int32", "int64"):
            out[name] = rng.randrange(-1, 1000)
        elif kind == "string":
            out[name] = rng.choice(["t", "topic-a", ""])
        elif kind == "nstring":
            out[name] = rng.choice([None, "x", "cluster"])
        elif kind == "bytes":
            out[name] = rng.choice([None, b"", b"\x00\x01records"])
    return out


def aiokafka_class(key: int, version: int, response: bool):
    module_name, response_name, *request_names = _CLASSES[key]
    module = importlib.import_module(f"aiokafka.protocol.{module_name}")
    for name in ([response_name] if response else request_names):
        cls = getattr(module, name.format(version), None)
        if cls is not None:
            return cls
    return None


CASES = [(key, version, response) for key in _CLASSES for version in range(wire.MAX_VERSION[key] + 1)
         for response in (True, False)]


@pytest.mark.parametrize("key,version,response", CASES)
def test_our_schema_is_aiokafkas(key, version, response):
    cls = aiokafka_class(key, version, response)
    if cls is None:
        pytest.skip("aiokafka has no class for this version")
    schema = (wire.RESPONSES if response else wire.REQUESTS)[key](version)
    rng = random.Random(f"{key}/{version}/{response}")
    for _ in range(5):
        ours = wire.encode(schema, sample(schema, rng))
        theirs = cls.decode(ours)
        assert theirs.encode() == ours
        assert wire.encode(schema, wire.decode(ours, 0, schema)) == ours


def test_decode_refuses_a_body_that_does_not_fit():
    schema = wire.produce_response(8)
    body = wire.encode(schema, sample(schema, random.Random(1)))
    with pytest.raises(ValueError):
        wire.decode(body + b"\x00", 0, schema)
    with pytest.raises(ValueError):
        wire.decode(body[:-1], 0, schema)
