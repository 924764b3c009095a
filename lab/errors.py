"""The one error tree of chaoslab. Every error says what was wrong and what to do.

    LabError
     ├── UsageError            bad command-line input (exit code 2)
     ├── ConfigError           a LAB_* setting is invalid
     │    └── TopicNameError   a topic name or one of its parts breaks the grammar or Kafka's rules (names the part)
     ├── EnvelopeError         an event envelope, or the Kafka record it came in, is malformed (names the field)
     ├── TopicRegistryError    the broker refused a topic registry operation for a reason of the request
 ├── TraceContextError     a W3C traceparent or tracestate header is malformed (names the header)
     ├── BreakerError          circuit breakers
     │    └── CallNotPermitted a breaker refused a call (OPEN, FORCED_OPEN, or HALF_OPEN out of permits)
     ├── DeadlineExceeded      a retry policy's overall deadline passed before an attempt succeeded
     ├── DeliveryNotAcked      a workload's send resolved as failed or unknown (its error class is the message)
     ├── FaultError            a fault's parameters are invalid, or it could not be injected or healed
     ├── ClientError           the resilient clients' infrastructure failures (business errors pass through)
     │    ├── DatabaseUnavailable  Postgres could not be reached or dropped the connection
     │    ├── QueryTimeout         a command ran past its timeout
     │    ├── PoolExhausted        no pooled connection within the acquire timeout
     │    ├── KafkaUnavailable     the broker could not be reached, or dropped or refused the request
     │    └── KafkaTimeout         a send or request got no answer within its bound (it may still land)
     ├── StoreError            the run history store cannot be opened, read or appended to (exit code 3)
     └── StackError            the stack could not be brought up, down or inspected (exit code 3)
          ├── PortInUse        names the port and the process holding it
          ├── BinaryNotFound   says how to install what is missing
          ├── PrivilegeError   cannot create or switch to the user Postgres needs
          ├── StartTimeout     a component did not become healthy in time (with its log tail)
          ├── StateError       a state, ledger or password file is unreadable, unwritable or of the wrong shape
          ├── Unhealthy        a health probe's exchange failed (what was asked, what came back)
          │    └── Refused     the server refused for good (a wrong password): not worth waiting for
          └── BackendUnavailable  the chosen backend cannot run here (e.g. no Docker engine)

Foreign exceptions (asyncpg, aiokafka, subprocess, HTTP) are translated where
they are met: the clients' tables are lab/clients/pg_errors.py and kafka_errors.py.
"""

from __future__ import annotations

__all__ = ["BackendUnavailable", "BinaryNotFound", "BreakerError", "CallNotPermitted", "ClientError", "ConfigError",
           "DatabaseUnavailable", "DeadlineExceeded", "DeliveryNotAcked", "EnvelopeError", "FaultError",
           "KafkaTimeout", "KafkaUnavailable", "LabError", "PoolExhausted", "PortInUse", "PrivilegeError",
           "QueryTimeout", "Refused", "StackError", "StartTimeout", "StateError", "StoreError", "TopicNameError",
           "TopicRegistryError", "TraceContextError", "Unhealthy", "UsageError"]


class LabError(Exception):
    """Root of every error chaoslab raises on purpose."""

    exit_code = 3


class UsageError(LabError):
    exit_code = 2


class ConfigError(LabError):
    exit_code = 2


class TopicNameError(ConfigError):
    """A topic name (or one of its parts) breaks the grammar or Kafka's rules; ``part`` names which."""

    def __init__(self, part: str, problem: str) -> None:
        super().__init__(f"topic name {part}: {problem}")
        self.part = part


class EnvelopeError(LabError):
    """An envelope, or the Kafka record it was read from, is malformed; ``field`` names what."""

    exit_code = 2

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"event envelope field {field!r}: {problem}")
        self.field = field


class TraceContextError(LabError):
    """A W3C trace context header (``traceparent`` or ``tracestate``) is malformed; ``header`` names which."""

    exit_code = 2

    def __init__(self, header: str, problem: str) -> None:
        super().__init__(f"trace context header {header!r}: {problem}")
        self.header = header


class TopicRegistryError(LabError):
    """The broker refused a registry operation for a reason of the request (not an outage); says which."""

    exit_code = 2


class BreakerError(LabError):
    pass


class CallNotPermitted(BreakerError):
    def __init__(self, breaker: str, state: str) -> None:
        super().__init__(f"circuit breaker {breaker!r} is {state} and does not permit further calls")
        self.breaker = breaker
        self.state = state


class DeadlineExceeded(LabError):
    """The retry policy's overall deadline passed before an attempt succeeded."""


class FaultError(LabError):
    """A fault's parameters are invalid, or it could not be injected or healed; names the fault."""


class ClientError(LabError):
    pass


class DatabaseUnavailable(ClientError):
    pass


class QueryTimeout(ClientError):
    pass


class PoolExhausted(ClientError):
    pass


class KafkaUnavailable(ClientError):
    pass


class KafkaTimeout(ClientError):
    pass


class DeliveryNotAcked(LabError):
    """A resilient send that resolved as failed or unknown (the error class is the message)."""

    def __init__(self, error_class: str) -> None:
        super().__init__(error_class)
        self.error_class = error_class


class StoreError(LabError):
    exit_code = 3


class StackError(LabError):
    exit_code = 3


class PortInUse(StackError):
    def __init__(self, port: int, holder: str) -> None:
        super().__init__(f"port {port} on 127.0.0.1 is already in use by {holder}; stop it, or choose another "
                         f"port with the matching LAB_*_PORT variable")
        self.port = port
        self.holder = holder


class BinaryNotFound(StackError):
    pass


class PrivilegeError(StackError):
    pass


class StartTimeout(StackError):
    pass


class BackendUnavailable(StackError):
    pass


class StateError(StackError):
    """Names the file and what is wrong with it."""


class Unhealthy(StackError):
    """A health probe got no good answer: says what it asked and what came back."""


class Refused(Unhealthy):
    """The server answered and refused for good (a wrong password): waiting longer cannot change it."""
