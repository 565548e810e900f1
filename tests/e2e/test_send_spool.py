"""`panoptes send-spool`: events our plugin could not deliver reach a real hub, once."""

import subprocess
import sys

import pytest
import requests

pytestmark = pytest.mark.e2e
spool = pytest.importorskip(
    "snakemake_logger_plugin_panoptes.spool", reason="the plugin is not installed"
)


def write(path, address, count, start=1):
    events = [
        {
            "event_id": f"run:{i}",
            "level": "job_info",
            "jobid": i,
            "name": "rule_a",
            "timestamp": 1795301541.0 + i,
        }
        for i in range(start, start + count)
    ] + [
        {"event_id": f"run:{i}:done", "level": "job_finished", "jobid": i}
        for i in range(start, start + count)
    ]
    spool.write_spool(
        path, spool.SpoolHeader(run_id="run", address=address, name="spooled"), events
    )


def send(*args):
    return subprocess.run(
        [sys.executable, "-m", "panoptes", "send-spool", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_send_spool_delivers_to_a_live_hub_and_is_idempotent(live_hub, tmp_path):
    first = tmp_path / ".snakemake/panoptes/a.jsonl"
    write(first, live_hub.url, 30)
    result = send(str(first), "--address", live_hub.url)
    assert result.returncode == 0, result.stderr
    assert "60 event(s) delivered" in result.stdout
    assert not first.exists()
    live_hub.projected()
    [run] = requests.get(f"{live_hub.url}/api/workflows", timeout=10).json()["workflows"]
    assert (run["name"], run["jobs_done"]) == ("spooled", 30)


def test_send_spool_reports_each_failure_and_exits_non_zero(live_hub, tmp_path):
    missing = tmp_path / "missing.jsonl"
    not_a_spool = tmp_path / "plain.jsonl"
    not_a_spool.write_text('{"hello": 1}\n')
    result = send(str(missing), str(not_a_spool), "--address", live_hub.url)
    assert result.returncode != 0
    assert "2 of 2 spool file(s) were not sent" in result.stderr
    assert str(missing) in result.stderr and str(not_a_spool) in result.stderr
