"""What every toxic is: a frozen set of attributes and one ``pipe`` coroutine.

A toxic type is a dataclass whose fields are its JSON attributes, in the order
Toxiproxy prints them, each with the Go type it is decoded as (``int64`` or
``int``). ``pipe(stub)`` moves chunks from ``stub.read()`` to ``stub.write()``
until the stream ends (then ``stub.close()``) or it is interrupted (then it
writes whatever it holds and lets ``Interrupted`` propagate).

Optional abilities, as in Toxiproxy, are plain attributes a toxic opts into:
``new_state()`` for per-connection state kept across updates, and
``cleanup(stub)`` run when the toxic is removed from a live connection.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..stream import Stub


@dataclasses.dataclass(frozen=True)
class Toxic:
    type_name: ClassVar[str] = ""
    go_struct: ClassVar[str] = ""
    #: JSON key -> Go type, in the order Toxiproxy prints the attributes.
    go_types: ClassVar[dict[str, str]] = {}

    async def pipe(self, stub: Stub) -> None:
        raise NotImplementedError

    def attributes(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.go_types}

    def merged(self, changes: dict[str, Any]) -> "Toxic":
        return dataclasses.replace(self, **changes)


async def pass_through(stub: Stub) -> None:
    """The noop pipe: also what a toxic runs as when its toxicity roll fails."""
    while True:
        chunk = await stub.read()
        if chunk is None:
            stub.close()
            return
        stub.write(chunk)  # type: ignore[arg-type]
