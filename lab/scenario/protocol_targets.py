"""Workloads for the protocol-aware faults (issue 15): transactions whose outcome can be
checked row by row, and a Kafka producer whose delivery ledger is recorded for the checks.

Both follow PgLane / KafkaLane (same constructor, same negative control: the naive
client without retries, timeouts or ledger) and add structured probes that the checks in
``protocol_checks`` read.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Any

import asyncpg

from ..clients import ConsumerSettings, KafkaConsumer, check_delivery
from ..clients.envelope import envelope_id
from ..clients.postgres import transaction_retry
from .history import FAIL, OK
from .targets import KafkaLane, PgLane

#: The statement of each transaction that a serialization-failure fault matches.
TXN_MARKER = "lab_txn_conflict"


class PgTxnLane(PgLane):
    """Each call is one transaction: insert the call's row, then a statement marked with
    TXN_MARKER (the one a fault fails), commit. The resilient client reruns a transaction
    the server rolled back (40001 / 40P01) with ``PostgresClient.run_transaction``; the
    negative control runs it once on a plain pool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = f"chaos_txn_{uuid.uuid4().hex[:8]}"
        # the lane's `outcomes` is its declaration (whose breaker outcomes are recorded); these are the calls'
        self.results: dict[int, str] = {}  # call -> committed | failed | unknown
        self.tries: dict[int, int] = {}  # call -> attempts made
        self.gave_up_on: dict[int, str | None] = {}  # failed call -> the SQLSTATE of its last attempt
        self.attempts = 0

    async def start(self) -> None:
        conn = await asyncpg.connect(self.direct_dsn, timeout=5)
        try:
            await conn.execute(f"CREATE TABLE {self.table} (op int NOT NULL, touched bool NOT NULL DEFAULT false)")
        finally:
            await conn.close(timeout=3)
        await super().start()

    async def op(self, sequence: int) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            self.attempts += 1
            self.tries[sequence] = self.tries.get(sequence, 0) + 1
            await conn.execute(f"INSERT INTO {self.table} (op) VALUES ($1)", sequence)
            await conn.execute(f"UPDATE {self.table} SET touched = true WHERE op = $1 /* {TXN_MARKER} */", sequence)

        try:
            if self.client is not None:
                await self.client.run_transaction(work)
            else:
                async with self.pool.acquire() as conn:  # type: ignore[union-attr]
                    async with conn.transaction():
                        await work(conn)
        except asyncio.CancelledError:
            self.results[sequence] = "unknown"
            raise
        except Exception as err:
            self.results[sequence] = "failed"
            self.gave_up_on[sequence] = getattr(err, "sqlstate", None) or type(err).__name__
            raise
        self.results[sequence] = "committed"

    async def _latency_call(self, index: int) -> None:
        """The latency probe runs the workload's own transaction (its baseline is of those), numbered below
        zero so its rows never meet a workload call's; they are read back and judged with the rest."""
        await self.op(-index)

    def _latency_call_is(self) -> str:
        return "the workload's transaction (INSERT, UPDATE, COMMIT)"

    async def probes(self, baseline_p99_s: float | None) -> None:
        await super().probes(baseline_p99_s)
        try:
            conn = await asyncpg.connect(self.direct_dsn, timeout=5)
            try:
                rows = await conn.fetch(f"SELECT op, count(*) AS n, bool_and(touched) AS touched "
                                        f"FROM {self.table} GROUP BY op")
                await conn.execute(f"DROP TABLE {self.table}")
            finally:
                await conn.close(timeout=3)
        except Exception as err:
            self.history.add("probe", FAIL, name="pg.exactly_once", evidence=f"read-back failed: {err}")
            return
        counts = {row["op"]: row["n"] for row in rows}
        committed = [op for op, outcome in self.results.items() if outcome == "committed"]
        failed = [op for op, outcome in self.results.items() if outcome == "failed"]
        missing = [op for op in committed if counts.get(op, 0) == 0]
        duplicated = [op for op, n in counts.items() if n > 1]
        survived = [op for op in failed if counts.get(op, 0) > 0]  # a failed transaction's write committed
        untouched = [row["op"] for row in rows if not row["touched"]]
        problems = [f"{len(missing)} committed transactions missing" if missing else "",
                    f"{len(duplicated)} committed more than once" if duplicated else "",
                    f"{len(survived)} failed transactions left their rows" if survived else "",
                    f"{len(untouched)} rows committed without their second statement" if untouched else ""]
        problems = [p for p in problems if p]
        self.history.add("probe", FAIL if problems else OK, name="pg.exactly_once",
                         evidence="; ".join(problems) or f"{len(committed)} committed transactions, each exactly once; "
                                                         f"{len(failed)} failed, none left a row",
                         committed=len(committed), failed=len(failed), missing=len(missing),
                         duplicated=len(duplicated), survived=len(survived))
        # A bounded retry policy may give up: with 30% of attempts failed at random, a transaction fails all 8
        # of its attempts with probability 0.3^8 (6.6e-5), so a long run sees it now and then. What must not
        # happen is giving up on a 40001 sooner. A transaction that failed on something else (a pool that gave
        # no connection within its bound on a starved machine, a command timeout) is not retried by design: the
        # policy retries serialization failures only, and "only expected errors" judges those errors.
        most = transaction_retry(1.0).max_attempts
        short = [op for op in failed if self.gave_up_on.get(op) == "40001" and self.tries.get(op, 0) < most]
        other = collections.Counter(str(self.gave_up_on.get(op)) for op in failed if self.gave_up_on.get(op) != "40001")
        self.history.add("probe", FAIL if short else OK, name="pg.all_committed",
                         evidence=f"{len(committed)} of {len(self.results)} transactions committed, "
                                  f"{len(failed)} failed for good"
                                  + (f", {len(short)} of them on 40001 before {most} attempts (e.g. call {short[0]}: "
                                     f"{self.tries.get(short[0], 0)} attempts)"
                                     if short else
                                     f" (on 40001 only after the policy's {most} attempts)" if failed else "")
                                  + (f"; not retried by design, failed on another error: {dict(other)}"
                                     if other else ""))
        retried = self.attempts - len(self.results)
        self.history.add("probe", OK if retried > 0 else FAIL, name="pg.retried",
                         evidence=f"{self.attempts} attempts for {len(self.results)} transactions "
                                  f"({retried} reruns)")


class KafkaLedgerLane(KafkaLane):
    """KafkaLane whose final probe also records the delivery report as data (``kafka.delivery``):
    per message id, how often it was read back and what the ledger says, with send times on the
    history's clock, so checks can tell lost from unknown and explain duplicates."""

    async def probes(self, baseline_p99_s: float | None) -> None:
        await super().probes(baseline_p99_s)
        try:
            async with KafkaConsumer(ConsumerSettings(self.settings.kafka_bootstrap)) as consumer:
                records = await consumer.read_all(self.topic, timeout_s=10)
        except Exception as err:
            self.history.add("probe", FAIL, name="kafka.delivery", evidence=f"read-back failed: {err}")
            return
        ids = [envelope_id(r.headers) or "<no envelope id>" for r in records]
        seen: dict[str, int] = {}
        for message_id in ids:
            seen[message_id] = seen.get(message_id, 0) + 1
        if self.producer is None:  # negative control: no ledger, only what raw aiokafka acknowledged
            repeated = {m: n for m, n in seen.items() if n > 1}
            self.history.add("probe", OK, name="kafka.delivery", ledger=False, lost=len(set(self.acked) - set(seen)),
                             unknown=0, unknown_delivered=0, failed_but_delivered=0,
                             duplicates=[{"id": m, "times": n, "status": "acked", "sent": None, "resolved": None}
                                         for m, n in repeated.items()],
                             evidence=f"no ledger: {len(self.acked)} acked, {len(repeated)} duplicated")
            return
        started = self.history.started
        entries = [d for d in self.producer.ledger.entries if d.topic == self.topic]
        report = check_delivery(entries, ids)
        by_id = {d.message_id: d for d in entries}
        lost = [{"id": m, "partition": by_id[m].partition, "offset": by_id[m].offset,
                 "sent": by_id[m].sent_at - started, "resolved": by_id[m].resolved_at - started}
                for m in report.lost[:10]]
        duplicates = [{"id": m, "times": n, "status": by_id[m].status if m in by_id else "never sent",
                       "sent": by_id[m].sent_at - started if m in by_id else None,
                       "resolved": by_id[m].resolved_at - started if m in by_id else None}
                      for m, n in report.duplicates.items()]
        self.history.add("probe", OK, name="kafka.delivery", ledger=True, lost=len(report.lost), lost_ids=lost,
                         unknown=report.unknown_delivered + report.unknown_missing,
                         unknown_delivered=report.unknown_delivered,
                         failed_but_delivered=len(report.failed_but_delivered), duplicates=duplicates,
                         evidence=report.summary())
