"""``python -m lab``: bring the stack up and down, inspect it, heal it.

Exit codes: 0 success, 1 a scenario failed (``run``), 2 usage error, 3 infrastructure error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

from .config import Settings
from .errors import LabError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 itself; route through LabError
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lab", description="chaoslab: chaos engineering for Postgres and Kafka services")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    up = sub.add_parser("up", help="bring Postgres, Kafka and the fault proxy up")
    up.add_argument("--backend", choices=["auto", "local", "compose"], help="default: LAB_BACKEND or auto")
    down = sub.add_parser("down", help="stop what `up` started")
    down.add_argument("--purge", action="store_true", help="also delete the Postgres data")
    status = sub.add_parser("status", help="each component's pid, endpoints and health")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    logs = sub.add_parser("logs", help="the last lines of each component's log")
    logs.add_argument("components", nargs="*", help="proxy, postgres, kafka (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=50)
    sub.add_parser("heal", help="undo faults: enable every proxy, remove every toxic, resume paused processes")
    return parser


def cmd_up(args: argparse.Namespace) -> int:
    from .stack import backend

    settings = Settings.from_env(backend=args.backend)
    name, why = backend.detect(settings)
    print(f"backend: {name} ({why})")
    started = time.monotonic()
    actions = backend.for_settings(settings, name).up()
    for component, action in actions.items():
        print(f"  {component:<9} {action}")
    print(f"up in {time.monotonic() - started:.2f}s: postgres {settings.pg_dsn}  kafka {settings.kafka_bootstrap}  "
          f"proxy API {settings.proxy_url}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from .stack import backend

    settings = Settings.from_env()
    chosen = backend.recorded(settings)
    stopped = chosen.down(purge=args.purge)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}"
          + (" (data purged)" if args.purge else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .stack import backend

    report = backend.recorded(Settings.from_env()).status()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"backend: {report['backend']}{'' if report['up'] else ' (not up)'}")
    for name, entry in report["components"].items():
        state = "paused" if entry["paused"] else ("running" if entry["running"] else "stopped")
        health = "healthy" if entry["healthy"] else "unhealthy"
        pid = entry.get("pid") or entry.get("container") or "-"
        print(f"  {name:<9} {state:<8} pid {pid!s:<8} {health:<10} {entry.get('endpoint', '')}  ({entry['health']})")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from .stack import backend

    print(backend.recorded(Settings.from_env()).logs(args.components, args.lines))
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    import asyncio

    from .proxy.client import ToxiproxyClient, ToxiproxyError
    from .stack import backend

    settings = Settings.from_env()
    chosen = backend.recorded(settings)
    resumed = chosen.resume_paused()
    try:
        asyncio.run(ToxiproxyClient(settings.proxy_url, timeout_s=5).reset())
        proxies = "every proxy enabled, every toxic removed"
    except ToxiproxyError as err:
        proxies = f"proxy not reachable ({err}); nothing to reset there"
    print(f"healed: {proxies}; resumed: {', '.join(resumed) or 'nothing was paused'}")
    return 0


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "logs": cmd_logs, "heal": cmd_heal}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        return COMMANDS[args.command](args)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `python -m lab status | head -1`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
