"""A proxy's toxics: definitions, in the order Toxiproxy lists them."""

from __future__ import annotations

import dataclasses
from typing import Any

from .gojson import Float32
from .toxics import Toxic


@dataclasses.dataclass(frozen=True)
class ToxicDef:
    """A toxic as the API knows it. ``stream`` is echoed as sent; ``direction`` is normalised."""

    name: str
    type: str
    stream: str
    direction: str  # "upstream" | "downstream"
    toxicity: float  # a float32 value
    toxic: Toxic

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": self.toxic.attributes(),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": Float32(self.toxicity),
        }


class ToxicCollection:
    """Upstream chain first, then downstream; insertion order within each."""

    def __init__(self) -> None:
        self._chains: dict[str, list[ToxicDef]] = {"upstream": [], "downstream": []}

    def chain(self, direction: str) -> list[ToxicDef]:
        return list(self._chains[direction])

    def all(self) -> list[ToxicDef]:
        return self._chains["upstream"] + self._chains["downstream"]

    def find(self, name: str) -> ToxicDef | None:
        for defn in self.all():
            if defn.name == name:
                return defn
        return None

    def add(self, defn: ToxicDef) -> None:
        self._chains[defn.direction].append(defn)

    def replace(self, defn: ToxicDef) -> None:
        chain = self._chains[defn.direction]
        for index, existing in enumerate(chain):
            if existing.name == defn.name:
                chain[index] = defn
                return
        raise KeyError(defn.name)

    def remove(self, name: str) -> ToxicDef | None:
        for chain in self._chains.values():
            for index, existing in enumerate(chain):
                if existing.name == name:
                    return chain.pop(index)
        return None
