"""Topic names: the lab's grammar (environment, domain, entity, event, version) and Kafka's own rules.

Grammar, five dot-separated parts:

    <environment>.<domain>.<entity>.<event>.v<version>     e.g.  prod.orders.order.created.v1

Each of the first four parts is lowercase ASCII letters and digits, words joined
by single hyphens (``payment-method``), starting with a letter; the version is a
positive integer without leading zeros. The grammar uses no ``_``, so two names
it builds never collide under Kafka's ``.``/``_`` rule (below) — but a topic made
outside it can, and ``collides`` says so.

Kafka's rules (``org.apache.kafka.common.internals.Topic``): 1 to 249 characters
of ``[a-zA-Z0-9._-]``, not ``.`` or ``..``; and because metric names replace
``.`` with ``_``, two topics that differ only there (``a.b`` and ``a_b``)
collide: the broker refuses the second. ``validate_kafka_name`` checks a name
alone; ``collides`` checks a pair.

Malformed input raises TopicNameError (a LabError) naming the part and the rule.
"""

from __future__ import annotations

import dataclasses
import re

from ..errors import TopicNameError

#: Kafka's longest topic name.
MAX_KAFKA_NAME_CHARS = 249
_KAFKA_CHARS = re.compile(r"[a-zA-Z0-9._-]+")
_PART = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_VERSION = re.compile(r"v([1-9][0-9]*)")
PARTS = ("environment", "domain", "entity", "event")


def validate_kafka_name(name: object) -> str:
    """``name`` if Kafka accepts it as a topic name; TopicNameError saying which rule it breaks."""
    if not isinstance(name, str):
        raise TopicNameError("name", f"must be a string, not {type(name).__name__}")
    if not name:
        raise TopicNameError("name", "must not be empty")
    if len(name) > MAX_KAFKA_NAME_CHARS:
        raise TopicNameError("name", f"is {len(name)} characters; Kafka allows at most {MAX_KAFKA_NAME_CHARS}")
    if name in (".", ".."):
        raise TopicNameError("name", f"{name!r} is reserved by Kafka")
    if not _KAFKA_CHARS.fullmatch(name):
        bad = sorted({c for c in name if not _KAFKA_CHARS.fullmatch(c)})
        raise TopicNameError("name", f"{name!r:.80} has characters Kafka refuses: {''.join(bad)!r:.40} "
                                     "(allowed: ASCII letters, digits, '.', '_', '-')")
    return name


def collision_key(name: str) -> str:
    """What Kafka compares to detect a collision: the name with every ``.`` made ``_``."""
    return name.replace(".", "_")


def collides(a: str, b: str) -> bool:
    """True if Kafka refuses one of these two different names because of the other (``.`` vs ``_``)."""
    return a != b and collision_key(a) == collision_key(b)


@dataclasses.dataclass(frozen=True, order=True)
class TopicName:
    """A topic name of the grammar, built from its parts (validated) or parsed from a string."""

    environment: str
    domain: str
    entity: str
    event: str
    version: int = 1

    def __post_init__(self) -> None:
        for part in PARTS:
            value = getattr(self, part)
            if not isinstance(value, str):
                raise TopicNameError(part, f"must be a string, not {type(value).__name__}")
            if not _PART.fullmatch(value):
                raise TopicNameError(part, f"{value!r:.60} must be lowercase ASCII letters and digits, words "
                                           "joined by single hyphens, starting with a letter (no '.' or '_')")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise TopicNameError("version", f"must be a positive integer, not {self.version!r}")
        validate_kafka_name(str(self))  # the length: the parts may each be fine and the whole too long

    def __str__(self) -> str:
        return f"{self.environment}.{self.domain}.{self.entity}.{self.event}.v{self.version}"

    @classmethod
    def parse(cls, name: str) -> "TopicName":
        """The parts of ``name``; TopicNameError naming the part that does not fit the grammar."""
        validate_kafka_name(name)
        parts = name.split(".")
        if len(parts) != 5:
            raise TopicNameError("name", f"{name!r:.80} has {len(parts)} dot-separated parts; the grammar has 5: "
                                         "environment.domain.entity.event.v<version>")
        version = _VERSION.fullmatch(parts[4])
        if version is None:
            raise TopicNameError("version", f"{parts[4]!r:.40} must be 'v' and a positive integer (v1, v2, ...)")
        environment, domain, entity, event = parts[:4]
        return cls(environment, domain, entity, event, version=int(version.group(1)))

    def matches(self, environment: str | None = None, domain: str | None = None, entity: str | None = None,
                event: str | None = None, version: int | None = None) -> bool:
        """True if every part given equals this name's."""
        wanted = (environment, domain, entity, event, version)
        mine = (self.environment, self.domain, self.entity, self.event, self.version)
        return all(w is None or w == m for w, m in zip(wanted, mine))
