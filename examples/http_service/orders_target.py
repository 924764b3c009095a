"""The orders service as an HTTP target, with its two breakers (Postgres, Kafka) read from /metrics.

    ORDERS_URL=http://127.0.0.1:8000 python -m lab run blackhole --target orders_target:target
"""

import os

from lab.scenario.http_target import http_target
from lab.scenario.prometheus import BreakerMetric


def target():
    base = os.environ.get("ORDERS_URL", "http://127.0.0.1:8000")
    return http_target(f"{base}/orders", users=10, spawn_rate=50, rate_per_user=20, timeout_s=5.0, fail_fast_s=1.5,
                       breaker_metric=[BreakerMetric(f"{base}/metrics", "orders_db_breaker_state", component="pg",
                                                     labels={"name": "orders-db"}),
                                       BreakerMetric(f"{base}/metrics", "orders_events_breaker_state",
                                                     component="kafka", labels={"name": "orders-events"})])
