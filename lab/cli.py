"""``python -m lab``: bring the stack up and down, inspect it, heal it.

Exit codes: 0 success, 1 a scenario failed (``run``), 2 usage error, 3 infrastructure error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Sequence

from .config import Settings
from .errors import LabError, UsageError
from .services import COMPONENTS

if TYPE_CHECKING:
    from .scenario.store import RunStore, StoredResult

SCENARIO_PATH_WARNING = (
    "Scenario modules are Python code: every module in lab/scenarios/ and in the directories of "
    "LAB_SCENARIO_PATH is imported, and so executed, by `list` and `run` (and by `heal`, the module defining a "
    "fault class a ledger entry names), with this command's rights (root, if you run the lab as root). Put only "
    "code you trust there.")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 itself; route through LabError
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lab", description="chaoslab: chaos engineering for Postgres and Kafka services")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    up = sub.add_parser("up", help="bring Postgres, Kafka and the fault proxy up")
    up.add_argument("--backend", choices=["auto", "local", "compose"], help="default: LAB_BACKEND or auto")
    down = sub.add_parser("down", help="stop what `up` started")
    down.add_argument("--purge", action="store_true", help="also delete the Postgres data")
    down.add_argument("--backend", choices=["local", "compose"],
                      help="the backend to stop when no stack is recorded (default: LAB_BACKEND, else local); "
                           "`down --purge --backend compose` deletes a compose stack's data left behind")
    status = sub.add_parser("status", help="each component's pid, endpoints and health")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    logs = sub.add_parser("logs", help="the last lines of each component's log")
    logs.add_argument("components", nargs="*", help="proxy, postgres, kafka (default: all)")
    logs.add_argument("-n", "--lines", type=_line_count, default=50, help="how many lines (default 50)")
    heal = sub.add_parser("heal", help="undo every fault in the ledger, then enable every proxy, remove every "
                                       "toxic and resume paused components", description=SCENARIO_PATH_WARNING)
    heal.add_argument("--ledger-only", action="store_true",
                      help="only undo the ledger's faults, each by its own heal (no sweep of proxies and pauses)")
    sub.add_parser("list", help="the available scenarios", description=SCENARIO_PATH_WARNING)
    run = sub.add_parser("run", help="run scenarios: exit 0 = resilient, 1 = not, 3 = infrastructure error")
    run.description = SCENARIO_PATH_WARNING
    run.add_argument("scenarios", nargs="*", help="scenario names (see `list`)")
    run.add_argument("--all", action="store_true", help="run every scenario")
    run.add_argument("--json", type=Path, help="write the JSON journal here")
    run.add_argument("--junit", type=Path, help="write JUnit XML here")
    run.add_argument("--spans", type=Path, help="write the runs' calls, phases and faults as OpenTelemetry spans "
                                                "here (an OTLP/JSON file: one trace per scenario run; with the "
                                                "OpenTelemetry SDK installed, the clients' own spans too)")
    run.add_argument("--html", type=Path, help="write the HTML report of this run here (timelines of its scenarios, "
                                               "trends from the run history)")
    run.add_argument("--negative-control", action="store_true",
                     help="run against a deliberately non-resilient target (no breaker, no timeouts): must fail")
    run.add_argument("--repeat", type=_positive_count, default=1, metavar="N",
                     help="run the scenarios N times over (every result goes to the run history)")
    run.add_argument("--until-fail", action="store_true",
                     help="stop after the first round in which a scenario did not pass (at most --repeat rounds, "
                          "100 when --repeat is not given)")
    run.add_argument("--history", type=Path, help="the run history store (default: LAB_STATE_DIR/history.sqlite)")
    run.add_argument("--mutant", metavar="NAME",
                     help="run against the resilient clients with one property broken (see lab/scenario/mutants.py); "
                          "its results are not stored in the run history")
    run.add_argument("--target", metavar="MODULE:ATTR|URL|FILE.toml",
                     help="run against your own Python target (a lab.scenario.Target, or one built with "
                          "lab.scenario.python_target.python_target), an HTTP URL, or an HTTP target file "
                          "(lab/scenario/http_target_file.py); its results are not stored in the run history")
    run.add_argument("--mutants", action="store_true",
                     help="run the check-by-mutant matrix (each mutant on the scenarios whose checks it must fail) "
                          "and print it: exit 0 when every listed check failed")
    history = sub.add_parser("history", help="pass rates, flaky scenarios, baselines and regressions over the "
                                             "stored runs")
    history.add_argument("scenario", nargs="?", help="one scenario (default: all that were run)")
    history.add_argument("--check", action="store_true",
                         help="exit 1 on a regression in a scenario's newest result or a newly flaky scenario")
    history.add_argument("--json", action="store_true", help="machine-readable output")
    history.add_argument("--history", type=Path, help="the run history store (default: LAB_STATE_DIR/history.sqlite)")
    report = sub.add_parser("report", help="write the HTML report of the run history: the newest run of each "
                                           "scenario as a timeline, trends, flaky and regressed scenarios")
    report.add_argument("scenarios", nargs="*", help="only these scenarios (default: every one stored)")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                        help="where to write it (default: report.html)")
    report.add_argument("--history", type=Path, help="the run history store (default: LAB_STATE_DIR/history.sqlite)")
    report.add_argument("--journal", type=Path, help="draw the runs of this JSON journal (`lab run --json`: runs "
                                                     "against --target are kept only there) instead of the history")
    return parser


def _positive_count(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a count of 1 or more")
    return int(raw)


def _store(settings: Settings, path: Path | None) -> "RunStore":
    from .scenario.store import RunStore

    return RunStore(path if path is not None else settings.state_path / "history.sqlite")


def _line_count(raw: str) -> int:
    if not raw.isdigit():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of lines (0 or more)")
    return int(raw)


def cmd_up(args: argparse.Namespace) -> int:
    from .stack import backend

    settings = Settings.from_env(backend=args.backend)
    settings.ensure_state_dir()
    name, why = backend.detect(settings)
    print(f"backend: {name} ({why})")
    started = time.monotonic()
    actions = backend.for_settings(settings, name).up()
    for component, action in actions.items():
        print(f"  {component:<9} {action}")
    where = "LAB_PG_PASSWORD" if settings.pg_password_override else str(settings.pg_password_file)
    print(f"up in {time.monotonic() - started:.2f}s: postgres {settings.pg_dsn_masked()} (password in {where})  "
          f"kafka {settings.kafka_bootstrap}  proxy API {settings.proxy_url}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Always possible: a damaged state file is salvaged, what it still records stopped, the rest reported."""
    from .stack import backend
    from .stack import state as state_file

    settings = Settings.from_env(backend=args.backend)
    current, problems = state_file.salvage(settings.state_path)
    if problems:
        # leave only what could be read, so the backend stops exactly that
        if current is not None:
            state_file.save(settings.state_path, current)
        else:
            state_file.clear(settings.state_path)
    if args.backend and current is not None and current.backend != args.backend:
        raise UsageError(f"the stack recorded as up is {current.backend}, not {args.backend}: run "
                         f"`python -m lab down` to stop it first")
    unrecorded = settings.backend if settings.backend in ("local", "compose") else "local"
    chosen = backend.for_settings(settings, current.backend if current else unrecorded)
    stopped = chosen.down(purge=args.purge)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}"
          + (" (data purged)" if args.purge else ""))
    for problem in problems:
        print(f"warning: {problem}. The lab could not stop what that part recorded: look for postgres, tansu "
              f"and lab.proxy processes of this lab (`ps -ef`) and stop them by hand. The state file is cleared.",
              file=sys.stderr)
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
        pid = entry.get("pid") or "-"
        container = f" container {entry['container']}" if entry.get("container") else ""
        print(f"  {name:<9} {state:<8} pid {pid!s:<8}{container} {health:<10} {entry.get('endpoint', '')}  "
              f"({entry['health']})")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from .stack import backend

    unknown = [name for name in args.components if name not in COMPONENTS]
    if unknown:
        raise UsageError(f"no component {unknown[0]!r}: choose from {', '.join(COMPONENTS)}")
    print(backend.recorded(Settings.from_env()).logs(args.components, args.lines))
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    import asyncio

    from .faults import FaultError, FaultLedger, heal_ledger
    from .proxy.client import ToxiproxyClient, ToxiproxyError
    from .stack import backend

    settings = Settings.from_env()  # each ledger entry names the class that heals it: nothing to import first
    failed: FaultError | None = None
    try:
        healed = asyncio.run(heal_ledger(FaultLedger(settings.state_path / "ledger")))
        print(f"ledger: {len(healed)} fault{'s' if len(healed) != 1 else ''} healed"
              + (f" ({', '.join(healed)})" if healed else ""))
    except FaultError as err:  # every other entry is healed; reset the proxy too, then report
        failed = err
    if args.ledger_only:
        if failed is not None:
            raise failed
        return 0
    chosen = backend.recorded(settings)
    resumed = chosen.resume_paused()
    try:
        asyncio.run(ToxiproxyClient(settings.proxy_url, timeout_s=5).reset())
        proxies = "every proxy enabled, every toxic removed"
    except ToxiproxyError as err:
        proxies = f"proxy not reachable ({err}); nothing to reset there"
    print(f"healed: {proxies}; resumed: {', '.join(resumed) or 'nothing was paused'}")
    if failed is not None:
        raise failed
    return 0


def _log_to_file(path: Path) -> None:
    """Library warnings (aiokafka, asyncpg) go to a JSON-lines file, not over the live console."""
    import logging

    from .clients.observability import JsonLinesFormatter

    from .files import private_log

    handler = logging.FileHandler(private_log(path))
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)


def cmd_list(args: argparse.Namespace) -> int:
    from .scenario import available

    for name, scenario in available().items():
        print(f"{name:<24} {scenario.description}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from .scenario import available, load, run
    from .scenario.report import verdict_table, write_journal, write_junit
    from .scenario.report.progress import Progress
    from .stack import backend

    if args.mutants:
        if args.scenarios or args.all or args.negative_control or args.mutant:
            raise UsageError("--mutants runs the whole matrix: give it no scenario, --all, --mutant or "
                             "--negative-control")
        return _run_matrix()
    if sum(map(bool, (args.negative_control, args.mutant, getattr(args, "target", None)))) > 1:
        raise UsageError("--negative-control, --mutant and --target each name the target: give one")
    from .scenario.mutants import mutant as find_mutant
    from .scenario.python_target import target_factory

    chosen = find_mutant(args.mutant)
    make_target = target_factory(getattr(args, "target", None), args.negative_control, chosen)
    if args.all == bool(args.scenarios):
        raise UsageError("name the scenarios to run, or give --all (not both); `python -m lab list` shows them")
    scenarios = list(available().values()) if args.all else load(args.scenarios)
    settings = Settings.from_env()
    settings.ensure_state_dir()
    _log_to_file(settings.state_path / "logs" / "run.log")
    stack = backend.running(settings)
    store = _store(settings, args.history)
    run_id = store.start_run(stack.name)
    rounds = args.repeat if args.repeat > 1 or not args.until_fail else 100
    results = []
    runnable = [s for s in scenarios if not s.skip_reason(stack)]
    progress = Progress(sys.stdout, total=rounds * len(runnable))

    async def ticker() -> None:
        while True:
            progress.tick()
            await asyncio.sleep(0.5)

    async def run_all() -> None:
        task = asyncio.current_task()
        assert task is not None  # run_all runs as asyncio.run's task
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)  # SIGTERM unwinds like Ctrl-C: faults heal
        ticking = asyncio.ensure_future(ticker()) if progress.tty else None
        try:
            await run_rounds()
        finally:
            if ticking is not None:
                ticking.cancel()

    async def run_rounds() -> None:
        for round_index in range(rounds):
            for scenario in scenarios:
                skip = scenario.skip_reason(stack)
                if skip:
                    if round_index == 0:
                        progress.note(f"SKIP     {scenario.name}: {skip}")
                    continue
                label = f"{scenario.name} ({make_target().name})"
                count = f" [round {round_index + 1} of {rounds}]" if rounds > 1 else ""
                progress.begin(label + count, scenario.description)
                result = await run(scenario, make_target(), settings, on_phase=progress.phase)
                progress.done(result)
                results.append(result)
                if chosen is None and not getattr(args, "target", None):  # the lab's targets' history only
                    recorder.submit(result)
            if args.until_fail and any(r.verdict != "pass" for r in results):
                progress.note(f"stopped after round {round_index + 1}: a scenario did not pass")
                return

    from .scenario.store import BackgroundRecorder

    recorder = BackgroundRecorder(store, run_id)  # each result written while the next scenario starts
    spans_open = contextlib.ExitStack()
    client_capture = None
    if getattr(args, "spans", None):  # the clients' own spans too: captured before any client is made
        from .scenario.report.client_spans import capture

        client_capture = spans_open.enter_context(capture())
    try:
        asyncio.run(run_all())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: faults healed", file=sys.stderr)
        return 130
    finally:
        spans_open.close()
        recorder.close()  # every result in the store before the reports read it
        if args.json:
            write_journal(args.json, results, stack.name)
        if args.junit:
            write_junit(args.junit, results)
        if getattr(args, "spans", None):
            from .scenario.report.client_spans import otlp_spans
            from .scenario.report.spans import write_spans

            write_spans(args.spans, results, otlp_spans(client_capture))
        if args.html:
            from .scenario.report.html import cases_from_results, stored, write_html

            write_html(args.html, cases_from_results(results), stored(store),
                       title=f"chaoslab run: {', '.join(sorted({r.scenario for r in results})) or 'nothing ran'}")
    print()
    print(verdict_table(results))
    if any(r.error for r in results):
        return 3
    return 0 if all(r.verdict == "pass" for r in results) else 1


def cmd_history(args: argparse.Namespace) -> int:
    from .scenario import trends

    settings = Settings.from_env()
    store = _store(settings, args.history)
    if not store.path.exists():
        raise UsageError(f"no run history at {store.path}: `python -m lab run` records one")
    by_scenario: dict[str, list[StoredResult]] = {}
    for result in store.results(args.scenario):
        by_scenario.setdefault(result.scenario, []).append(result)
    if args.scenario and not by_scenario:
        raise UsageError(f"no stored runs of scenario {args.scenario!r}")
    report = {name: trends.trend(name, results) for name, results in by_scenario.items()}
    alarms = [f"{name}: {r.metric} {r.value:.3f}s beyond {r.allowed:.3f}s (baseline {r.baseline:.3f}s)"
              for name, t in report.items() for r in t.regressions]
    alarms += [f"{name}: newly flaky: {report[name].flaky}" for name, results in by_scenario.items()
               if trends.newly_flaky(results)]
    if args.json:
        import dataclasses

        print(json.dumps({"scenarios": {n: dataclasses.asdict(t) for n, t in report.items()}, "alarms": alarms},
                         indent=2))
    else:
        print(f"{'scenario':<26} {'runs':>5} {'pass':>6}  flaky / baselines (median of the last passing runs)")
        for name, t in sorted(report.items()):
            keys = [k for k in sorted(t.baselines) if k.endswith(("detection_s", "recovery_s")) or k == "duration_s"]
            shown = ", ".join(f"{k} {t.baselines[k]:.2f}s" for k in keys) or "-"
            print(f"{name:<26} {t.runs:>5} {t.pass_rate:>6.0%}  {'FLAKY: ' + t.flaky if t.flaky else shown}")
        for alarm in alarms:
            print(f"ALARM  {alarm}")
    return 1 if args.check and alarms else 0


def cmd_report(args: argparse.Namespace) -> int:
    from .scenario.report.html import cases_from_store, stored, write_html

    if args.journal is not None:
        return _report_journal(args)
    store = _store(Settings.from_env(), args.history)
    if not store.path.exists():
        raise UsageError(f"no run history at {store.path}: `python -m lab run` records one")
    by_scenario = stored(store)
    unknown = [name for name in args.scenarios if name not in by_scenario]
    if unknown:
        raise UsageError(f"no stored runs of scenario {unknown[0]!r} in {store.path}")
    if args.scenarios:
        by_scenario = {name: by_scenario[name] for name in args.scenarios}
    cases = cases_from_store(store, by_scenario)
    write_html(args.output, cases, by_scenario, title=f"chaoslab report: {store.path}")
    print(f"wrote {args.output}: {len(cases)} timeline{'s' if len(cases) != 1 else ''}, trends of "
          f"{len(by_scenario)} scenario{'s' if len(by_scenario) != 1 else ''}")
    return 0


def _report_journal(args: argparse.Namespace) -> int:
    from .scenario.report.from_journal import cases_from_journal
    from .scenario.report.html import write_html

    if args.scenarios or args.history:
        raise UsageError("--journal draws the runs of one journal: give it no scenarios and no --history")
    cases = cases_from_journal(args.journal)
    write_html(args.output, cases, {}, title=f"chaoslab report: {args.journal}")
    print(f"wrote {args.output}: {len(cases)} timeline{'s' if len(cases) != 1 else ''} from {args.journal}")
    return 0


def _run_matrix() -> int:
    """Each mutant on the scenarios the matrix lists for it; a table of every cell (check, expected, got)."""
    import asyncio

    from .scenario import LabClients, available, run
    from .scenario.matrix import UNCOVERED_BECAUSE, cells, uncovered
    from .stack import backend
    from .scenario.mutants import MUTANTS

    settings = Settings.from_env()
    settings.ensure_state_dir()
    _log_to_file(settings.state_path / "logs" / "run.log")
    scenarios = available()
    stack = backend.running(settings)
    rows, errors = [], 0
    for mutant_name, scenario_name, expected in cells():
        skip = scenarios[scenario_name].skip_reason(stack)
        if skip:  # e.g. the protocol scenarios behind Toxiproxy
            print(f"== {scenario_name} on mutant {mutant_name}: skipped: {skip}", flush=True)
            continue
        print(f"== {scenario_name} on mutant {mutant_name}: {MUTANTS[mutant_name].breaks}", flush=True)
        result = asyncio.run(run(scenarios[scenario_name], LabClients(MUTANTS[mutant_name]), settings))
        if result.error:
            errors += 1
        got = {v.check: v for v in result.verdicts}
        for check in expected:
            verdict = got.get(check)
            rows.append((mutant_name, scenario_name, check, verdict.result if verdict else "missing",
                         verdict.evidence if verdict else (result.error or "no such check")))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    print(f"{'mutant':<{width[0]}}  {'scenario':<{width[1]}}  {'check (must FAIL)':<{width[2]}}  got")
    for mutant_name, scenario_name, check, got_result, evidence in rows:
        mark = "ok " if got_result == "fail" else "MISSED"
        print(f"{mutant_name:<{width[0]}}  {scenario_name:<{width[1]}}  {check:<{width[2]}}  {got_result.upper():<7} "
              f"{mark}  {evidence[:100]}")
    missing = uncovered(scenarios)
    if missing:
        print("\nchecks no mutant is listed to fail, and why (lab/scenario/matrix.py UNCOVERED_BECAUSE):")
        for scenario_name, checks in missing.items():
            for check in checks:
                print(f"  {scenario_name}: {check}: {UNCOVERED_BECAUSE.get(scenario_name, {}).get(check, '?')}")
    if errors:
        return 3
    return 0 if all(r[3] == "fail" for r in rows) else 1


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "logs": cmd_logs, "heal": cmd_heal,
            "list": cmd_list, "run": cmd_run, "history": cmd_history, "report": cmd_report}


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
