"""Abuse of the CLI's inputs: bad state files, bad ledger entries, bad settings, bad arguments.

Every one must end in a clear error naming the file or setting and the problem
(exit 2 for bad settings and usage, 3 for a broken state), never a traceback;
and `down` must always be possible. No stack runs here: these are fast.
"""

from __future__ import annotations

import json
import stat

import pytest

from ..labenv import LabEnv

pytestmark = [pytest.mark.e2e, pytest.mark.security]

WRONG_SHAPES = [
    pytest.param("[]", id="list"),
    pytest.param('{"backend": "local", "components": []}', id="components-list"),
    pytest.param('{"backend": "local"}', id="no-components"),
    pytest.param('{"backend": 7, "components": {}}', id="backend-number"),
    pytest.param('{"backend": "local", "components": {"proxy": {"name": "proxy", "process": {"pid": "x"}}}}',
                 id="pid-not-a-number"),
    pytest.param('{"backend": "local", "components": {"proxy": 5}}', id="component-number"),
    pytest.param('{"backend": "nomad", "components": {}}', id="unknown-backend"),
]


def _no_traceback(result) -> None:
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("text", WRONG_SHAPES)
@pytest.mark.parametrize("command", ["status", "up", "logs", "heal", "run"])
def test_a_state_file_of_the_wrong_shape_is_a_clear_error(tmp_path, text, command):
    env = LabEnv(tmp_path / "state")
    env.state_dir.mkdir()
    (env.state_dir / "state.json").write_text(text)
    args = ["run", "--all"] if command == "run" else [command]
    result = env.run(*args, check=False, timeout=60)
    _no_traceback(result)
    assert result.returncode == 3, result.stderr
    assert str(env.state_dir / "state.json") in result.stderr


@pytest.mark.parametrize("text", WRONG_SHAPES + [pytest.param('{"backend": "lo', id="truncated")])
def test_down_with_a_corrupt_state_file_says_so_and_clears_it(tmp_path, text):
    env = LabEnv(tmp_path / "state")
    env.state_dir.mkdir()
    (env.state_dir / "state.json").write_text(text)
    result = env.run("down", check=False, timeout=60)
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert str(env.state_dir / "state.json") in result.stderr and "could not" in result.stderr
    assert not (env.state_dir / "state.json").exists()
    assert "nothing was running" in env.run("down").stdout  # and again: a clean slate


def test_down_still_stops_what_a_half_corrupt_state_file_records(tmp_path):
    """One good component record next to a bad one: the good one's process is stopped."""
    import subprocess
    import sys

    from lab.stack.procs import ProcessRecord, is_ours, start_ticks

    env = LabEnv(tmp_path / "state")
    env.state_dir.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        record = ProcessRecord(sleeper.pid, start_ticks(sleeper.pid), sys.executable)
        state = {"backend": "local", "components": {
            "kafka": {"name": "kafka", "process": record.to_json(), "container": None, "info": {}},
            "postgres": {"name": "postgres", "process": {"pid": "garbage"}}}}
        (env.state_dir / "state.json").write_text(json.dumps(state))
        result = env.run("down", check=False, timeout=60)
        _no_traceback(result)
        assert result.returncode == 0 and "kafka" in result.stdout
        assert "postgres" in result.stderr and "could not" in result.stderr
        sleeper.wait(timeout=10)
        assert not is_ours(record)
    finally:
        sleeper.kill()
        sleeper.wait()


def _ledger_entry(env: LabEnv, name: str, text: str) -> None:
    ledger = env.state_dir / "ledger"
    ledger.mkdir(parents=True, exist_ok=True)
    (ledger / name).write_text(text)


@pytest.mark.parametrize("text, problem", [
    pytest.param('{"id": "1-a", "kind": "toxic", "state": "active", "undo": {}}', "key", id="missing-key"),
    pytest.param('{"id": "1-a", "kind": "toxic", "key": "k", "state": "active"}', "undo", id="missing-undo"),
    pytest.param('{"id": "1-a", "kind": "toxic", "key": "k", "state": "gone", "undo": {}}', "state",
                 id="bad-state"),
    pytest.param('{"id": "1-a", "kind": "toxic", "key": "k", "st', "not valid JSON", id="truncated"),
    pytest.param('[1, 2]', "not a JSON object", id="list"),
])
def test_heal_reports_a_bad_ledger_entry_by_file_and_problem(tmp_path, text, problem):
    env = LabEnv(tmp_path / "state")
    _ledger_entry(env, "1-a.json", text)
    result = env.run("heal", check=False, timeout=60)
    _no_traceback(result)
    assert result.returncode == 3, result.stderr
    assert str(env.state_dir / "ledger" / "1-a.json") in result.stderr and problem in result.stderr


@pytest.mark.parametrize("setting", ["file", "under-a-file", "nul"])
@pytest.mark.parametrize("command", ["up", "status", "down", "heal", "logs"])
def test_an_invalid_state_dir_is_a_settings_error(tmp_path, setting, command):
    afile = tmp_path / "afile"
    afile.write_text("x")
    value = {"file": str(afile), "under-a-file": str(afile / "state"), "nul": "bad\\x00dir"}[setting]
    env = LabEnv(tmp_path / "unused")
    if setting == "nul":  # the environment cannot carry a NUL byte: pass it through the settings directly
        from lab.config import Settings
        from lab.errors import ConfigError

        with pytest.raises(ConfigError, match="LAB_STATE_DIR"):
            Settings.from_env({"LAB_STATE_DIR": "bad\x00dir"})
        return
    result = env.run(command, extra_env={"LAB_STATE_DIR": value}, check=False, timeout=60)
    _no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert "LAB_STATE_DIR" in result.stderr and value in result.stderr


def test_a_state_dir_that_cannot_be_written_is_a_settings_error(tmp_path):
    """/proc/self is a directory nobody, root included, can create files in."""
    env = LabEnv(tmp_path / "unused")
    result = env.run("up", extra_env={"LAB_STATE_DIR": "/proc/self/chaoslab"}, check=False, timeout=60)
    _no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert "LAB_STATE_DIR" in result.stderr and "/proc/self/chaoslab" in result.stderr


def test_state_ledger_and_password_files_are_private(tmp_path):
    from lab.config import Settings
    from lab.faults.ledger import FaultLedger
    from lab.stack import state as state_file
    from lab.stack.state import StackState

    env = LabEnv(tmp_path / "state")
    settings = Settings.from_env(env.env)
    state_file.save(settings.state_path, StackState("local"))
    FaultLedger(settings.state_path / "ledger").open("lab.faults.network:ToxicFault", "toxic", "k", {})
    password_file = settings.pg_password_file
    assert settings.pg_password  # generated on first use
    for path in [settings.state_path, settings.state_path / "ledger"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in [settings.state_path / "state.json", password_file,
                 *(settings.state_path / "ledger").glob("*.json")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_logs_with_a_negative_line_count_is_a_usage_error(tmp_path):
    result = LabEnv(tmp_path).run("logs", "kafka", "-n", "-5", check=False)
    assert result.returncode == 2 and "-n" in result.stderr and "-5" in result.stderr


def test_logs_of_an_unknown_component_is_a_usage_error_naming_the_choices(tmp_path):
    result = LabEnv(tmp_path).run("logs", "nosuch", check=False)
    assert result.returncode == 2
    assert "nosuch" in result.stderr and all(n in result.stderr for n in ("proxy", "postgres", "kafka"))


def test_list_help_says_scenario_path_modules_are_executed(tmp_path):
    result = LabEnv(tmp_path).run("list", "--help")
    assert "LAB_SCENARIO_PATH" in result.stdout and "execute" in result.stdout
