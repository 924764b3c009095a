"""One client connection black-holed in the kernel: every packet of one TCP connection dropped.

Why not a proxy toxic: a toxic acts on every connection through the proxy (its ``toxicity`` is a
random draw per connection), and a Kafka client connects to the address the broker advertises,
not to a bootstrap of its own, so a second proxy cannot single one producer out. A half-open
connection (no RST, no FIN, nothing answered) is what a NAT or firewall that forgets a flow leaves
behind; aiokafka does not close a connection whose request timed out, so it keeps sending into the
hole until the connection is dropped. This fault makes exactly that for ONE established connection
of this process to ``remote_port`` on loopback (the busiest: the one that sent the most), with an
nftables table of its own (root, or
CAP_NET_ADMIN, in the lab's network namespace); connections opened afterwards are untouched.

Guaranteed: the table's name is fixed before anything is touched and recorded in the ledger, so
``lab heal`` removes it from another process; healing an absent table is harmless; with no such
connection, or no ``nft``, injecting fails with a FaultError that says which.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
from typing import Any

from .base import Fault, FaultError
from .ledger import FaultLedger

__all__ = ["ConnectionBlackhole", "established_local_ports"]

NFT_TIMEOUT_S = 5.0
SS_TIMEOUT_S = 5.0


def established_local_ports(remote_port: int, pid: int | None = None) -> list[int]:
    """Local ports of the process's established TCP connections to ``remote_port``, busiest first (most
    bytes sent; ``ss -tinp``, iproute2). A FaultError if ``ss`` is missing or fails."""
    if shutil.which("ss") is None:
        raise FaultError("ConnectionBlackhole needs ss (iproute2) on PATH to find the connection")
    done = subprocess.run(["ss", "-tinpH", "state", "established", f"( dport = :{remote_port} )"],
                          capture_output=True, text=True, timeout=SS_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise FaultError(f"ss failed ({done.returncode}): {done.stderr.strip() or 'no message'}")
    owner = f"pid={pid or os.getpid()},"
    found: list[tuple[int, int]] = []
    port: int | None = None
    for line in done.stdout.splitlines():
        if not line[:1].isspace():  # a connection: local and peer address, users:((...))
            fields = line.split()
            port = int(fields[2].rsplit(":", 1)[1]) if owner in line and len(fields) > 3 else None
        elif port is not None:  # its TCP info
            sent = re.search(r"\bbytes_sent:(\d+)", line)
            found.append((int(sent.group(1)) if sent else 0, port))
            port = None
    return [p for _, p in sorted(found, key=lambda item: -item[0])]


async def _nft(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec("nft", *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(process.communicate(), NFT_TIMEOUT_S)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise FaultError(f"nft {' '.join(args)} did not finish within {NFT_TIMEOUT_S:g}s") from None
    return process.returncode or 0, err.decode(errors="replace").strip()


class ConnectionBlackhole(Fault):
    """Every packet of one of this process's connections to ``remote_port`` dropped (both directions).

    ``which``: the index among the process's established connections to that port, busiest first
    (``0``: the one that has sent the most bytes). The chosen local port is recorded in the ledger once learned.
    """

    kind = "connection_blackhole"

    def __init__(self, ledger: FaultLedger, remote_port: int, which: int = 0) -> None:
        if not isinstance(remote_port, int) or not 0 < remote_port < 65536:
            raise FaultError(f"remote_port must be a TCP port (1-65535), got {remote_port!r}")
        if not isinstance(which, int) or which < 0:
            raise FaultError(f"which must be an index >= 0, got {which!r}")
        super().__init__(ledger)
        self.remote_port, self.which = remote_port, which
        self.table = f"chaoslab_conn_{uuid.uuid4().hex[:10]}"
        self.local_port: int | None = None

    def key(self) -> str:
        return f"connection_blackhole:{self.remote_port}:{self.which}"

    def heal_data(self) -> dict[str, Any]:
        return {"table": self.table}

    async def _inject(self) -> dict[str, Any]:
        if shutil.which("nft") is None:
            raise FaultError("ConnectionBlackhole needs nft (nftables) on PATH")
        # ss is a subprocess bounded by SS_TIMEOUT_S: run it off the loop, whose calls keep their own deadlines
        ports = await asyncio.to_thread(established_local_ports, self.remote_port, os.getpid())
        if len(ports) <= self.which:
            raise FaultError(f"ConnectionBlackhole: this process has {len(ports)} established connection(s) to "
                             f"port {self.remote_port}, no connection number {self.which}")
        port = self.local_port = ports[self.which]
        chain = "{ type filter hook output priority 0 ; }"
        for args in (("add", "table", "inet", self.table),
                     ("add", "chain", "inet", self.table, "out", chain),
                     ("add", "rule", "inet", self.table, "out", "tcp", "sport", str(port), "drop"),
                     ("add", "rule", "inet", self.table, "out", "tcp", "dport", str(port), "drop")):
            code, err = await _nft(*args)
            if code != 0:
                raise FaultError(f"nft {' '.join(args)} failed ({code}): {err or 'no message'}")
        return {"local_port": port}

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        if shutil.which("nft") is None:
            return  # nothing can have been injected without it
        code, err = await _nft("delete", "table", "inet", data["table"])
        if code != 0 and "No such file" not in err:
            raise FaultError(f"nft delete table inet {data['table']} failed ({code}): {err or 'no message'}")
