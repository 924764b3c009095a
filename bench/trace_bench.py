"""What tracing costs per call: off (no tracer), the OpenTelemetry API's no-op tracer, and the SDK exporting nothing.

    python bench/trace_bench.py [--rounds 1001] [--records 100] [--stack] [--stack-rounds 11] [--sends 2000]
                                [--queries 500] [--json FILE]

Variants, each a fresh client per round:
* ``off``: no tracer given and no TracerProvider installed: what every client is
  unless tracing is set up (tracing.py resolves this once, at construction);
* ``noop``: the API's no-op tracer passed explicitly: what calling the API on every
  call would cost even with nothing installed (the design this avoids);
* ``sdk``: an SDK TracerProvider with no span processor: spans made, nothing exported.

In-process part (always): ``KafkaConsumer.poll_envelopes`` over ``--records``
ready-made records, ``--rounds`` times (many short rounds: the shared machine's
bursts of load then land in some rounds of each variant, and the median of the
per-round differences passes over them) (the client's poll is given them, no broker), against
``reference``: the same decode-and-dedup loop with no tracing code at all (the
consumer as it was before tracing). ``off - reference`` per record is the cost of
tracing being available and off on the consume path.

``--stack`` part (needs ``python -m lab up``), ``--stack-rounds`` rounds: ``--sends`` pipelined
``enqueue_envelope`` per round through the stack's Kafka, and ``--queries``
sequential ``fetchval('SELECT 1')`` through its Postgres. With tracing off these
clients run exactly their untraced methods (the traced ones are routed in only
for a traced client: tests/unit/test_tracing_choice.py), so ``noop - off`` and
``sdk - off`` are what turning tracing on costs.

Times are this process's CPU time (``time.process_time``: the client, aiokafka
and the event loop all run in it), not wall-clock: on the shared 2-core lab
machine a wall-clock round is mostly time spent waiting for a CPU, which buried a
difference of a microsecond under quartiles of +-60 us. Rounds rotate which
variant goes first; reported: each variant's median CPU time per call, and
per-round differences against the baseline as the median with its quartiles
and range (the lab machine is shared: the range shows its noise).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka.structs import ConsumerRecord  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.trace import NoOpTracer  # noqa: E402

from lab.clients import (ConsumerSettings, KafkaConsumer, KafkaProducer, KafkaSettings, PostgresClient,  # noqa: E402
                         PostgresSettings)
from lab.clients.dedup import SeenIds  # noqa: E402
from lab.clients.envelope import Envelope, decode, encode  # noqa: E402
from lab.clients.tracing import installed_tracer  # noqa: E402
from lab.config import Settings  # noqa: E402

_cpu = time.process_time  # this process's CPU time: a call's own cost, not the time it waited for a CPU


TRACERS: dict[str, Callable[[], Any]] = {
    "off": lambda: None,
    "noop": NoOpTracer,
    "sdk": lambda: TracerProvider().get_tracer("bench"),  # no span processor: nothing exported
}


def records(count: int) -> list[ConsumerRecord]:
    out = []
    for offset in range(count):
        value, headers = encode(Envelope("order.created", "bench", b"x" * 100, correlation_id="c-1"))
        headers.append(("traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01".encode()))
        out.append(ConsumerRecord("bench", 0, offset, 0, 0, None, value, None, len(value), -1, tuple(headers)))
    return out


def reference_poll(batch: list[ConsumerRecord], seen: SeenIds) -> list[Envelope]:
    """The consume loop with no tracing code (poll_envelopes before tracing)."""
    events = []
    for record in batch:
        envelope = decode(record.value, record.headers)
        if seen.first_time(envelope.id):
            events.append(envelope)
    return events


async def consume_per_record_us(variant: str, batch: list[ConsumerRecord]) -> float:
    seen = SeenIds(max_ids=len(batch) + 1)
    if variant == "reference":
        gc.disable()  # as for the others: a collection lands in no variant's timing
        started = _cpu()
        reference_poll(batch, seen)
        elapsed = _cpu() - started
        gc.enable()
        return elapsed / len(batch) * 1e6
    consumer = KafkaConsumer(ConsumerSettings("127.0.0.1:1"), tracer=TRACERS[variant]())

    async def poll(timeout_s: float = 1.0, max_records: int | None = None) -> list[Any]:
        return batch

    vars(consumer)["poll"] = poll  # the records without a broker; the rest of poll_envelopes as it is
    gc.disable()
    started = _cpu()
    events, malformed = await consumer.poll_envelopes(seen)
    elapsed = _cpu() - started
    gc.enable()
    assert len(events) == len(batch) and not malformed
    return elapsed / len(batch) * 1e6


async def rounds(variants: list[str], measure: Callable[[str], Awaitable[float]], count: int) -> dict[str, list[float]]:
    per_call: dict[str, list[float]] = {v: [] for v in variants}
    for index in range(count):
        order = variants[index % len(variants):] + variants[:index % len(variants)]
        for variant in order:
            per_call[variant].append(await measure(variant))
    return per_call


def summary(per_call: dict[str, list[float]], baseline: str) -> dict[str, Any]:
    out: dict[str, Any] = {v: {"median_us": round(statistics.median(xs), 3)} for v, xs in per_call.items()}
    for variant, values in per_call.items():
        if variant == baseline:
            continue
        diffs = [a - b for a, b in zip(values, per_call[baseline])]
        q1, _, q3 = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else (diffs[0],) * 3
        out[variant][f"minus_{baseline}_us"] = {"median": round(statistics.median(diffs), 3),
                                                "q1": round(q1, 3), "q3": round(q3, 3),
                                                "min": round(min(diffs), 3), "max": round(max(diffs), 3)}
    return out


def show(title: str, result: dict[str, Any]) -> None:
    print(title)
    for variant, values in result.items():
        extra = "".join(f"   {key.replace('_us', '')}: {d['median']:+.3f} us (quartiles {d['q1']:+.3f}, "
                        f"{d['q3']:+.3f}; range {d['min']:+.3f}, {d['max']:+.3f})"
                        for key, d in values.items() if isinstance(d, dict))
        print(f"  {variant:<10} {values['median_us']:8.3f} us/call{extra}")


async def stack_part(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env()
    topic = f"trace-bench-{uuid.uuid4().hex[:8]}"
    envelopes = [Envelope("order.created", "bench", b"x" * 100) for _ in range(args.sends)]

    async def send(variant: str) -> float:
        async with KafkaProducer(KafkaSettings(settings.kafka_bootstrap, client_id=f"bench-{variant}"),
                                 tracer=TRACERS[variant]()) as producer:
            await (await producer.enqueue_envelope(topic, envelopes[0]))  # metadata and the first batch
            started = _cpu()
            futures = [await producer.enqueue_envelope(topic, e) for e in envelopes]
            await asyncio.gather(*futures)
            return (_cpu() - started) / len(envelopes) * 1e6

    async def query(variant: str) -> float:
        async with PostgresClient(PostgresSettings(settings.pg_dsn, min_size=1, max_size=1,
                                                   application_name=f"bench-{variant}"),
                                  tracer=TRACERS[variant]()) as client:
            await client.fetchval("SELECT 1")
            started = _cpu()
            for _ in range(args.queries):
                await client.fetchval("SELECT 1")
            return (_cpu() - started) / args.queries * 1e6

    variants = list(TRACERS)
    return {"kafka_send": summary(await rounds(variants, send, args.stack_rounds), "off"),
            "pg_query": summary(await rounds(variants, query, args.stack_rounds), "off")}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1001)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--stack-rounds", type=int, default=11)
    parser.add_argument("--stack", action="store_true", help="also the producer and Postgres on the running stack")
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    assert installed_tracer("bench") is None, "a global TracerProvider is installed: 'off' would not be off"
    batch = records(args.records)

    async def consume(variant: str) -> float:
        return await consume_per_record_us(variant, batch)

    results = {"consume": summary(await rounds(["reference", "off", "noop", "sdk"], consume, args.rounds),
                                  "reference")}
    show(f"poll_envelopes, {args.records} records x {args.rounds} rounds (in process)", results["consume"])
    if args.stack:
        results.update(await stack_part(args))
        show(f"enqueue_envelope pipelined, {args.sends} sends x {args.stack_rounds} rounds (stack)",
             results["kafka_send"])
        show(f"fetchval('SELECT 1'), {args.queries} queries x {args.stack_rounds} rounds (stack)", results["pg_query"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
