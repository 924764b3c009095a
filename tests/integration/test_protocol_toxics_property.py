"""Hypothesis (issue 15 item 4): any interleaving of statements or requests through a
protocol-aware toxic leaves the client's protocol state valid: no call hangs (each is
bounded), no desynchronisation (asyncpg and aiokafka check every reply against what they
sent), each faulted call fails with the configured error and no other, each unfaulted one
succeeds, and after the toxic is removed the next call works on the same connection.

Real asyncpg and aiokafka against the real stack. Examples are bounded (max_examples)
and so is every call (CALL_S); Hypothesis' own deadline is off because a call's time is
the server's, not the test's.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.proxy.client import ToxiproxyClient

pytestmark = [pytest.mark.integration, pytest.mark.property]

CALL_S = 5
EXAMPLES = 20
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# -- Postgres ---------------------------------------------------------------------------------

PG_ERRORS = {"40001": asyncpg.SerializationError, "40P01": asyncpg.DeadlockDetectedError,
             "57014": asyncpg.QueryCanceledError}

statement = st.tuples(st.sampled_from(["simple", "prepared", "param"]), st.booleans())  # (how, matches?)
pg_op = st.one_of(
    statement.map(lambda s: ("one", s)),
    st.lists(statement, min_size=1, max_size=4).map(lambda ss: ("txn", ss)),
    st.just(("toggle", None)),
)


def sql_for(how: str, matches: bool, n: int) -> tuple[str, tuple]:
    marker = "lab_hit" if matches else "lab_miss"
    if how == "simple":
        return f"SELECT '{marker}', {n}; SELECT 1", ()
    if how == "param":
        return f"SELECT '{marker}'::text || $1::text", (str(n),)
    return f"SELECT '{marker}', {n}", ()


async def run_statement(conn: asyncpg.Connection, how: str, matches: bool, n: int) -> None:
    sql, args = sql_for(how, matches, n)
    if how == "simple":
        await asyncio.wait_for(conn.execute(sql), CALL_S)
    else:
        await asyncio.wait_for(conn.fetch(sql, *args), CALL_S)


async def pg_interleaving(stack, sqlstate: str, probability: float, latency_ms: int, ops: list) -> None:
    proxy = ToxiproxyClient(stack.proxy_url, timeout_s=5)
    await proxy.reset()
    attributes = {"pattern": "lab_hit", "sqlstate": sqlstate, "probability": probability, "latency": latency_ms}
    toxic_on = False
    conn = await asyncio.wait_for(asyncpg.connect(stack.pg_dsn), CALL_S)
    try:
        for n, (kind, arg) in enumerate(ops):
            if kind == "toggle":
                if toxic_on:
                    await proxy.remove_toxic("postgres", "pt")
                else:
                    await proxy.add_toxic("postgres", "postgres", name="pt", attributes=attributes)
                toxic_on = not toxic_on
                continue
            statements = [arg] if kind == "one" else arg
            certain = toxic_on and probability >= 1.0 and sqlstate != ""
            faulted = any(matches for _, matches in statements) and certain
            try:
                if kind == "one":
                    await run_statement(conn, *arg, n)
                else:
                    async with conn.transaction():
                        for how, matches in statements:
                            await run_statement(conn, how, matches, n)
            except asyncpg.PostgresError as err:
                assert toxic_on and sqlstate in PG_ERRORS, f"unexpected error {err!r}"
                assert isinstance(err, PG_ERRORS[sqlstate]), f"{err!r} is not {sqlstate}"
            except (asyncpg.ConnectionDoesNotExistError, asyncpg.AdminShutdownError) as err:
                assert toxic_on and sqlstate == "57P01", f"connection lost: {err!r}"
                assert "administrator command" in str(err)
                conn = await asyncio.wait_for(asyncpg.connect(stack.pg_dsn), CALL_S)
            else:
                assert not faulted, "a statement that had to fail succeeded"
            assert not conn.is_in_transaction()
        await proxy.reset()
        assert await asyncio.wait_for(conn.fetchval("SELECT 'lab_hit'"), CALL_S) == "lab_hit"
        assert await asyncio.wait_for(conn.execute("SELECT 'lab_hit'"), CALL_S) == "SELECT 1"
    finally:
        await asyncio.wait_for(conn.close(), CALL_S)


@SETTINGS
@given(
    sqlstate=st.sampled_from(["40001", "40P01", "57014", "57P01", ""]),
    probability=st.sampled_from([1.0, 0.5]),
    latency_ms=st.sampled_from([0, 5]),
    ops=st.lists(pg_op, min_size=1, max_size=8),
)
def test_postgres_toxic_any_interleaving_keeps_sessions_valid(stack, sqlstate, probability, latency_ms, ops):
    asyncio.run(pg_interleaving(stack, sqlstate, probability, latency_ms, ops))


# -- Kafka ------------------------------------------------------------------------------------

KAFKA_ERRORS = {"NOT_LEADER_OR_FOLLOWER": 6, "REQUEST_TIMED_OUT": 7, "NOT_ENOUGH_REPLICAS": 19,
                "LEADER_NOT_AVAILABLE": 5, "UNKNOWN_TOPIC_OR_PARTITION": 3}
API = {"produce": 0, "fetch": 1, "metadata": 3}

# No acks=0 Produce here: Tansu (the local broker) answers those, which real Kafka never does and
# aiokafka does not expect, so they break the connection with or without any toxic (seen here:
# CorrelationIdError straight to the broker). test_kafka_toxic.py covers acks=0 not forwarded.
kafka_request = st.sampled_from(["produce", "fetch", "metadata"])


def records(value: bytes) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, is_transactional=0, producer_id=-1, producer_epoch=-1,
                                        base_sequence=0, batch_size=16384)
    builder.append(0, timestamp=None, key=None, value=value, headers=[])
    return bytes(builder.build())


def build(kind: str, topic: str) -> object:
    if kind == "produce":
        return ProduceRequest(None, 1, 2000, [(topic, [(0, records(b"p"))])])
    if kind == "fetch":
        return FetchRequest(10, 1, 1 << 20, 0, [(topic, [(0, 0, 1 << 20)])])
    return MetadataRequest([topic])


def error_codes(kind: str, response: object) -> set[int]:
    if kind == "metadata":
        return {t[0] for t in response.topics}
    return {p[1] for t in response.topics for p in t[1]}


async def kafka_interleaving(stack, keys: list[str], error: str, forward: bool, throttle_ms: int,
                             probability: float, batches: list[list[str]]) -> None:
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    proxy = ToxiproxyClient(stack.proxy_url, timeout_s=5)
    await proxy.reset()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, enable_idempotence=False)
    await asyncio.wait_for(producer.start(), CALL_S)
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"seed", partition=0), CALL_S)
    finally:
        await asyncio.wait_for(producer.stop(), CALL_S)
    client = AIOKafkaClient(bootstrap_servers=stack.kafka)
    await asyncio.wait_for(client.bootstrap(), CALL_S)
    try:
        node = client.get_random_node()
        await proxy.add_toxic("kafka", "kafka", name="kt", attributes={
            "api_keys": ",".join(keys), "error": error, "forward": forward,
            "throttle_time_ms": throttle_ms, "probability": probability})

        async def exchange(kinds: list[str], toxic_on: bool) -> None:
            # All of a batch in flight at once on one connection: responses must come back in order.
            responses = await asyncio.wait_for(
                asyncio.gather(*(client.send(node, build(kind, topic)) for kind in kinds)), CALL_S)
            for kind, response in zip(kinds, responses):
                hit = toxic_on and kind in keys
                codes = error_codes(kind, response)
                if hit and probability >= 1.0:
                    assert codes == {KAFKA_ERRORS[error]}, (kind, codes)
                elif not hit:
                    assert codes == {0}, (kind, codes)
                else:
                    assert codes <= {0, KAFKA_ERRORS[error]}, (kind, codes)
                if hit and probability >= 1.0 and hasattr(response, "throttle_time_ms"):
                    assert response.throttle_time_ms == throttle_ms

        for kinds in batches:
            await exchange(kinds, toxic_on=True)
        await proxy.remove_toxic("kafka", "kt")
        await exchange(["metadata", "produce", "fetch"], toxic_on=False)
    finally:
        await proxy.reset()
        await asyncio.wait_for(client.close(), CALL_S)


@SETTINGS
@given(
    keys=st.lists(st.sampled_from(list(API)), min_size=1, max_size=3, unique=True),
    error=st.sampled_from(list(KAFKA_ERRORS)),
    forward=st.booleans(),
    throttle_ms=st.sampled_from([0, 250]),
    probability=st.sampled_from([1.0, 0.5]),
    batches=st.lists(st.lists(kafka_request, min_size=1, max_size=5), min_size=1, max_size=4),
)
def test_kafka_toxic_any_interleaving_keeps_connections_valid(stack, keys, error, forward, throttle_ms,
                                                              probability, batches):
    asyncio.run(kafka_interleaving(stack, keys, error, forward, throttle_ms, probability, batches))
