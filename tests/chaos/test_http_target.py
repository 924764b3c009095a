"""A real HTTP service this repository does not run itself, put under the blackhole scenario as an HTTP target
with Locust load: examples/http_service/orders_service.py, started as its own process on the lab's proxied
Postgres. The resilient one PASSES (fails fast with 503s, its /metrics breaker opens and closes, throughput
and error rate come back); the fragile one (no breaker, no timeouts) FAILS, with per-phase figures for
every phase in the JSON journal and the HTML report. The resilient one is described by a TOML target file
(lab/scenario/http_target_file.py), the fragile one by a Python module (examples/http_service/orders_target.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..labenv import ROOT, free_ports

pytestmark = pytest.mark.chaos
EXAMPLE = ROOT / "examples" / "http_service"


@pytest.fixture(params=["resilient", "fragile"])
def service(request, chaos_settings):
    (port,) = free_ports(1)
    process = subprocess.Popen([sys.executable, str(EXAMPLE / "orders_service.py"), "--port", str(port), "--dsn",
                                chaos_settings.pg_dsn, "--bootstrap", chaos_settings.kafka_bootstrap]
                               + (["--fragile"] if request.param == "fragile" else []),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "listening on ..." once its pool is up (bounded by the pool's connect)
        assert "listening" in line, line
        yield request.param, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


TARGET_FILE = """
name = "orders service"
[request]
url = "{url}/orders"
timeout_s = 5.0
[load]
users = 10
spawn_rate = 50
rate_per_user = 20
[checks]
fail_fast_s = 1.5
[[breaker]]
metrics_url = "{url}/metrics"
metric = "orders_db_breaker_state"
component = "pg"
labels = {{ name = "orders-db" }}
[[breaker]]
metrics_url = "{url}/metrics"
metric = "orders_events_breaker_state"
component = "kafka"
labels = {{ name = "orders-events" }}
"""


def test_an_http_service_under_locust_load(chaos_stack, service, tmp_path):
    kind, url = service
    journal_path, html_path = tmp_path / "journal.json", tmp_path / "report.html"
    target = "orders_target:target"
    if kind == "resilient":
        (tmp_path / "orders.toml").write_text(TARGET_FILE.format(url=url))
        target = "orders.toml"
    result = subprocess.run([sys.executable, "-m", "lab", "run", "blackhole", "--target", target,
                             "--json", str(journal_path), "--html", str(html_path)], cwd=tmp_path,
                            env={**chaos_stack.env, "PYTHONPATH": str(EXAMPLE), "ORDERS_URL": url},
                            capture_output=True, text=True, timeout=180)
    assert journal_path.exists(), result.stdout + result.stderr
    (scenario,) = json.loads(journal_path.read_text())["scenarios"]
    verdicts = {v["check"]: (v["result"], v["evidence"]) for v in scenario["verdicts"]}
    phases = next(e for e in scenario["events"] if e.get("name") == "http.phases")["phases"]
    assert set(phases) >= {"baseline", "fault", "heal", "recovery", "final"}, phases
    assert all(phases[p]["requests"] > 0 for p in ("baseline", "recovery", "final")), phases
    assert {"rps", "p50_ms", "p95_ms", "p99_ms", "error_rate"} <= set(phases["baseline"])
    assert scenario["http_phases"] == phases
    drawn = subprocess.run([sys.executable, "-m", "lab", "report", "--journal", str(journal_path), "-o",
                            str(tmp_path / "from-journal.html")], cwd=tmp_path, env=chaos_stack.env,
                           capture_output=True, text=True, timeout=60)
    assert drawn.returncode == 0, drawn.stdout + drawn.stderr
    for page in (html_path.read_text(), (tmp_path / "from-journal.html").read_text()):  # lab run --html, lab report
        assert '<table class="http-phases">' in page and page.count("<tr data-phase=") == len(phases), page[-3000:]
    if kind == "resilient":
        assert result.returncode == 0, {check: found for check, found in verdicts.items() if found[0] != "pass"}
        assert verdicts["pg: breaker OPEN in the fault and back (from /metrics)"][0] == "pass"
        assert verdicts["kafka: breaker OPEN in the fault and back (from /metrics)"][0] == "pass"
    else:
        assert result.returncode == 1, verdicts
        assert verdicts["http: fails fast during the fault"][0] == "fail", verdicts
