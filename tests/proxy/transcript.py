"""Reads the Toxiproxy 2.12 API transcript (tests/proxy/data) into replayable steps."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

TRANSCRIPT = Path(__file__).parent / "data" / "toxiproxy-2.12-api-transcript.md"


@dataclasses.dataclass
class Step:
    number: int
    title: str
    method: str
    path: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    probe: str | None
    probe_label: str | None


def _blocks(section: str) -> list[str]:
    return re.findall(r"```http\n(.*?)\n```", section, flags=re.S)


def _split(block: str) -> tuple[str, dict[str, str], str]:
    head, _, body = block.partition("\n\n")
    lines = head.split("\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers[name] = value
    return lines[0], headers, body


def load_steps() -> list[Step]:
    text = TRANSCRIPT.read_text()
    steps = []
    parts = re.split(r"^### (\d+)\. (.*)$", text, flags=re.M)
    for index in range(1, len(parts) - 2, 3):
        number, title, section = int(parts[index]), parts[index + 1], parts[index + 2]
        request, response = _blocks(section)[:2]
        request_line, request_headers, request_body = _split(request)
        status_line, response_headers, _ = _split(response)
        method, path, _ = request_line.split(" ")
        size = re.search(r"Body bytes: (\d+), (ends with \\n|no trailing newline)", section)
        assert size, f"step {number}: no body size"
        body = _split(response)[2]
        length = int(size.group(1))
        raw = (body + "\n").encode() if size.group(2).startswith("ends") else body.encode()
        raw = raw[:length] if length else b""
        assert len(raw) == length, f"step {number}: body length {len(raw)} != {length}"
        probe = re.search(r"^> Data-plane probe \(([^)]*)\): (.*)$", section, flags=re.M)
        steps.append(Step(
            number=number,
            title=title,
            method=method,
            path=path,
            request_headers=request_headers,
            request_body=request_body.encode(),
            status=int(status_line.split(" ")[1]),
            response_headers=response_headers,
            response_body=raw,
            probe=probe.group(2) if probe else None,
            probe_label=probe.group(1) if probe else None,
        ))
    return steps
