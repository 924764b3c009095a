"""Consumer-side deduplication by envelope id, in bounded memory.

Kafka delivers at least once: a producer retry after a lost acknowledgement, or
a consumer restarting from its last commit, hands the same event over twice.
The envelope's id says which records are the same event; ``SeenIds`` remembers
the most recent ``max_ids`` ids (first in, first out) so a consumer handles each
event once as long as its duplicate arrives within that window.

Memory: one dict slot per remembered id, about 100 bytes for a 32-character id
plus the id string itself (~80 bytes): ~180 bytes per id, so the default window
of 100,000 ids holds ~18 MB at most. Past the window a duplicate is not caught;
``evicted`` counts how many ids have left it, so that is never silent.
"""

from __future__ import annotations

from ..errors import ConfigError

#: Ids remembered by default (see the module docstring for the bytes each).
DEFAULT_MAX_IDS = 100_000


class SeenIds:
    """The last ``max_ids`` distinct ids seen; ``first_time(id)`` is True once per id within that window."""

    def __init__(self, max_ids: int = DEFAULT_MAX_IDS) -> None:
        if not isinstance(max_ids, int) or isinstance(max_ids, bool) or max_ids < 1:
            raise ConfigError(f"SeenIds: max_ids must be a positive integer, not {max_ids!r}")
        self.max_ids = max_ids
        self._ids: dict[str, None] = {}
        self.duplicates = 0
        self.evicted = 0

    def first_time(self, message_id: str) -> bool:
        ids = self._ids
        if message_id in ids:
            self.duplicates += 1
            return False
        ids[message_id] = None
        if len(ids) > self.max_ids:
            del ids[next(iter(ids))]
            self.evicted += 1
        return True

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids
