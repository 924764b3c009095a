"""A real headless Chromium for the report tests, driven over the DevTools protocol on a pipe.

``--remote-debugging-pipe`` speaks the protocol on fds 3 (commands in) and 4 (answers and events
out), one NUL-terminated JSON message each: no port, no websocket library, nothing but the stdlib.
``open_page`` loads a file and returns what the tests judge: console errors and uncaught exceptions,
every network request the page made, the answer of a script run in the page, and a PNG screenshot.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@dataclasses.dataclass
class Page:
    console_errors: list[str]
    requests: list[str]
    evaluated: Any
    screenshot_png: bytes


class _Pipe:
    def __init__(self, to_browser: int, from_browser: int, deadline: float) -> None:
        self.to_browser, self.from_browser, self.deadline = to_browser, from_browser, deadline
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if ready:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise EOFError("chromium closed its DevTools pipe")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read_message()
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_event(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message()
            self.events.append(event)
            if event.get("method") == method:
                return event


def _as_fds_3_and_4(commands: int, answers: int) -> None:
    """In the child: ``commands`` on fd 3, ``answers`` on fd 4 (through fds above 9 first, so neither move
    overwrites the other)."""
    high_commands, high_answers = fcntl.fcntl(commands, fcntl.F_DUPFD, 10), fcntl.fcntl(answers, fcntl.F_DUPFD, 10)
    os.dup2(high_commands, 3)
    os.dup2(high_answers, 4)


def open_page(browser: str, page: Path, script: str, width_px: int = 1200, height_px: int = 1600,
              timeout_s: float = 60.0) -> Page:
    """Load ``page`` (a file), run ``script`` (an expression) in it once loaded, and screenshot it."""
    commands_r, commands_w = os.pipe()
    answers_r, answers_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="chaoslab-chromium-")
    # chromium reads commands on its fd 3 and writes answers on its fd 4
    child = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
         f"--user-data-dir={profile}", f"--window-size={width_px},{height_px}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        pass_fds=(3, 4), preexec_fn=lambda: _as_fds_3_and_4(commands_r, answers_w))
    os.close(commands_r)
    os.close(answers_w)
    pipe = _Pipe(commands_w, answers_r, time.monotonic() + timeout_s)
    try:
        targets = pipe.call("Target.getTargets")["targetInfos"]
        target = next((t["targetId"] for t in targets if t["type"] == "page"), None)
        if target is None:
            target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
        session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            pipe.call(f"{domain}.enable", session)
        pipe.events.clear()
        pipe.call("Page.navigate", session, url=page.resolve().as_uri())
        pipe.wait_event("Page.loadEventFired")
        evaluated = pipe.call("Runtime.evaluate", session, expression=script, returnByValue=True)
        if "exceptionDetails" in evaluated:
            raise RuntimeError(f"the test's script failed in the page: {evaluated['exceptionDetails']}")
        shot = pipe.call("Page.captureScreenshot", session, format="png")
        errors, requests = [], []
        for event in pipe.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(f"uncaught: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"log: {params['entry'].get('text')}")
            elif method == "Network.requestWillBeSent":
                requests.append(params["request"]["url"])
        with_browser_closed = pipe.call("Browser.close")
        del with_browser_closed
        return Page(errors, requests, evaluated["result"].get("value"), base64.b64decode(shot["data"]))
    finally:
        os.close(commands_w)
        os.close(answers_r)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
