"""The service table: one name per service, used alike for its proxy, its stack component, its
workload target and its checks' evidence, so that "postgres" means the same thing everywhere.

The proxy is a component but not a service (nothing is proxied to it).
"""

from __future__ import annotations

__all__ = ["COMPONENTS", "KAFKA", "POSTGRES", "PROXY", "SERVICES"]

POSTGRES = "postgres"
KAFKA = "kafka"
SERVICES = (POSTGRES, KAFKA)
PROXY = "proxy"
COMPONENTS = (PROXY, *SERVICES)
