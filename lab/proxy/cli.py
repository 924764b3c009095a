"""``lab-proxy`` / ``python -m lab.proxy``: toxiproxy-server's command line.

Flags follow Go's ``flag`` package, so ``-port 8474``, ``--port=8474`` and
``-proxy-metrics`` all work. ``-seed`` really seeds: the same seed gives the
same toxicity and jitter decisions.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Sequence

from .api import VERSION
from .listen import ListenError
from .proxy import Context
from .server import ConfigError, ProxyServer

USAGE = """Usage of lab-proxy (a Toxiproxy {version}-compatible server):
  -allow-remote-listen
    \tlet proxies listen on addresses off loopback, as Toxiproxy does; with
    \t-allow-remote-listen=false only loopback addresses are accepted (403
    \totherwise) and an empty host means 127.0.0.1 (default true)
  -config string
    \tJSON file containing proxies to create on startup
  -dial-timeout float
    \tseconds to wait for an upstream connection (default 10)
  -host string
    \tHost for toxiproxy's API to listen on (default "localhost")
  -port string
    \tPort for toxiproxy's API to listen on (default "8474")
  -proxy-metrics
    \tenable metrics for proxy
  -runtime-metrics
    \tenable runtime-related metrics
  -seed int
    \tSeed for randomizing toxics with
  -version
    \tshow version and exit
"""


class UsageError(Exception):
    pass


@dataclass
class Options:
    host: str = "localhost"
    port: str = "8474"
    config: str = ""
    seed: int | None = None
    proxy_metrics: bool = False
    runtime_metrics: bool = False
    version: bool = False
    dial_timeout_s: float = 10.0
    allow_remote_listen: bool = True


_VALUE_FLAGS = {"host", "port", "config", "seed", "dial-timeout"}
_BOOL_FLAGS = {"proxy-metrics", "runtime-metrics", "version", "allow-remote-listen"}
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def parse_args(argv: Sequence[str]) -> Options:
    """Go flag semantics: stops at the first non-flag argument or ``--``."""
    options = Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        name = arg.lstrip("-")
        if len(arg) - len(name) > 2 or not name or name.startswith("="):
            raise UsageError(f"bad flag syntax: {arg}")
        name, has_value, value = name.partition("=")
        if name in ("h", "help"):
            raise SystemExit(_print_usage(0))
        if name in _BOOL_FLAGS:
            if has_value and value not in _TRUE | _FALSE:
                raise UsageError(f'invalid boolean value "{value}" for -{name}')
            setattr(options, name.replace("-", "_"), not has_value or value in _TRUE)
            continue
        if name not in _VALUE_FLAGS:
            raise UsageError(f"flag provided but not defined: -{name}")
        if not has_value:
            if not args:
                raise UsageError(f"flag needs an argument: -{name}")
            value = args.pop(0)
        if name == "seed":
            try:
                options.seed = int(value, 0)
            except ValueError:
                raise UsageError(f'invalid value "{value}" for flag -seed: parse error') from None
        elif name == "dial-timeout":
            try:
                options.dial_timeout_s = float(value)
            except ValueError:
                raise UsageError(f'invalid value "{value}" for flag -dial-timeout: parse error') from None
            if options.dial_timeout_s <= 0:
                raise UsageError("-dial-timeout must be more than 0 seconds")
        else:
            setattr(options, name, value)
    return options


def _print_usage(code: int) -> int:
    stream = sys.stdout if code == 0 else sys.stderr
    stream.write(USAGE.format(version=VERSION))
    return code


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname.lower(), "time": self.formatTime(record), "message": record.getMessage()}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


async def _serve(options: Options) -> int:
    if not options.port.isdigit() or int(options.port) > 65535:
        sys.stderr.write(f"lab-proxy: invalid -port {options.port!r}: expected a number from 0 to 65535\n")
        return 2
    context = Context(
        seed=options.seed,
        dial_timeout_s=options.dial_timeout_s,
        proxy_metrics=options.proxy_metrics,
        runtime_metrics=options.runtime_metrics,
        allow_remote_listen=options.allow_remote_listen,
    )
    server = ProxyServer(options.host, int(options.port), context)
    try:
        await server.start()
    except ListenError as err:
        sys.stderr.write(f"lab-proxy: cannot start the API on {options.host}:{options.port}: {err}\n")
        return 1
    log = logging.getLogger("lab.proxy")
    if options.config:
        try:
            count = await server.populate_file(options.config)
            log.info("Populated proxies from file %s (%d)", options.config, count)
        except ConfigError as err:
            log.error("%s", err)  # as toxiproxy-server: reported, and the server keeps running
    _freeze_startup_objects()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.ensure_future(server.serve_forever())
    await stop.wait()
    log.info("shutting down")
    serving.cancel()
    await server.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        sys.stderr.write(f"{err}\n")
        return _print_usage(2)
    if options.version:
        print(f"toxiproxy-server version {VERSION} (lab.proxy)")
        return 0
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger("lab.proxy")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if _apply_mutant(root) != 0:
        return 2
    _raise_open_file_limit(logging.getLogger("lab.proxy"))
    _install_fast_loop()
    return asyncio.run(_serve(options))


def _apply_mutant(log: logging.Logger) -> int:
    """A proxy mutant (lab/proxy/mutants.py) named by LAB_PROXY_MUTANT, read once here; 0, or 2 for a bad name."""
    name = os.environ.get("LAB_PROXY_MUTANT", "")
    if not name:
        return 0
    from . import mutants

    try:
        chosen = mutants.apply(name)
    except (mutants.UnknownMutant, mutants.StalePatch) as err:
        sys.stderr.write(f"lab-proxy: {err}\n")
        return 2
    log.warning("MUTANT %s: %s (a deliberately broken proxy, for proving checks can fail)", chosen.name,
                chosen.breaks)
    return 0


def _raise_open_file_limit(log: logging.Logger) -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as toxiproxy-server does.

    Every proxied connection holds two descriptors; the common soft limit of 1024
    would cap the proxy at about 500 connections and reset the rest.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as err:
        log.warning("could not raise the open-file limit from %s to %s: %s", soft, target, err)


def _freeze_startup_objects() -> None:
    """Keep the objects of start-up (modules, classes, the API's tables: ~20,000) out of every later
    collection.

    A full collection walks every tracked object; over the start-up heap that is one pause of about
    9 ms on this machine (bench/tail_bench.py's README section), which lands on whichever round trip is
    in flight. Frozen, they are never walked again; what the proxy allocates later (links, toxics) is
    still collected as usual. Called once the server is listening and the config file is applied.
    """
    gc.collect()
    gc.freeze()


def _install_fast_loop() -> None:
    """Use uvloop when installed (faster data path) unless LAB_PROXY_LOOP=asyncio."""
    if os.environ.get("LAB_PROXY_LOOP", "auto") == "asyncio":
        return
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
