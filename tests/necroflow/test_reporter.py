"""The necroflow integration against real necroflow runs and a fake hub checking the contract
of ``POST /api/events``: what is reported, and that reporting never costs the pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

necroflow = pytest.importorskip("necroflow", reason="necroflow is not installed")
panoptes_necroflow = pytest.importorskip("panoptes_necroflow")

from panoptes_necroflow.reporter import LOG_TAIL_BYTES, LOG_TAIL_LINES, read_log_tail  # noqa: E402

from tests.plugin.fakehub import FakeHub  # noqa: E402

from .conftest import CALLS, SAMPLES  # noqa: E402
from .pipeline import EXAMPLE, FAIL_EXIT_CODE, FAIL_MESSAGE, build_dag  # noqa: E402


def the_run(hub: FakeHub) -> tuple[str, list[dict[str, Any]]]:
    """The one run the hub got, and its events."""
    [run_id] = hub.stored
    return run_id, hub.events(run_id)


def by_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == kind]


def assert_contract_kept(hub: FakeHub) -> None:
    """Every request to the event API was accepted: none broke the contract."""
    statuses = {request.status for request in hub.requests_to("/api/events")}
    assert statuses == {200}


def test_a_run_reports_its_steps_every_call_and_its_success(hub: FakeHub, tmp_path: Path) -> None:
    dag = build_dag(tmp_path / "nodes", SAMPLES)
    result = panoptes_necroflow.run(dag, hub.url, name="my-run")

    assert isinstance(result, dict)
    assert len(result) == CALLS  # what dag.run returns: necroflow's report
    assert {execution.state for execution in result.values()} == {"up_to_date"}
    assert_contract_kept(hub)
    run_id, events = the_run(hub)
    assert hub.engines[run_id] == "necroflow"

    started = events[0]
    assert started["type"] == "run_started"
    assert started["name"] == "my-run"
    assert started["work_dir"] == str(tmp_path)
    assert {step["name"]: step["depends_on"] for step in started["steps"]} == {
        "make_reference": [],
        "fetch_reads": [],
        "align": ["fetch_reads", "make_reference"],
    }
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["success"] is True

    finished = by_type(events, "job_finished")
    assert len(finished) == CALLS
    assert len({event["job_id"] for event in finished}) == CALLS
    # The reference is made once for the three samples: necroflow de-duplicates the call.
    assert Counter(event["step"] for event in finished) == {
        "make_reference": 1,
        "fetch_reads": 3,
        "align": 3,
    }
    assert {e["tags"]["sample"] for e in finished if e["step"] == "fetch_reads"} == set(SAMPLES)
    assert {e["job_id"] for e in by_type(events, "job_started")} == {e["job_id"] for e in finished}
    for event in by_type(events, "job_started"):
        assert event["log"] == [str(Path(event["work_dir"]) / ".rip" / "job.log")]
        assert event["command"]
    assert len({event["event_id"] for event in events}) == len(events)
    assert not by_type(events, "job_failed") and not by_type(events, "job_cached")
    assert not (tmp_path / ".panoptes" / "spool").exists() or not any(
        (tmp_path / ".panoptes" / "spool").iterdir()
    )


def test_a_failing_call_is_reported_with_exit_code_and_log_tail_and_reraised(
    hub: FakeHub, tmp_path: Path
) -> None:
    dag = build_dag(tmp_path / "nodes", SAMPLES, fail_sample="B")
    with pytest.raises(ExceptionGroup) as raised:
        panoptes_necroflow.run(dag, hub.url, name="failing", keep_going=True)
    [inner] = raised.value.exceptions
    assert isinstance(inner, subprocess.CalledProcessError)

    assert_contract_kept(hub)
    _, events = the_run(hub)
    [failed] = by_type(events, "job_failed")
    assert failed["step"] == "align"
    assert failed["exit_code"] == FAIL_EXIT_CODE
    tail = failed["log_tail"].splitlines()
    assert tail[-1] == FAIL_MESSAGE
    assert len(tail) == LOG_TAIL_LINES  # the last 100 of 151 lines
    assert tail[0] == "52"
    assert "CalledProcessError" in failed["error"]

    finished = by_type(events, "job_finished")
    assert Counter(event["step"] for event in finished) == {
        "make_reference": 1,
        "fetch_reads": 3,
        "align": 2,  # A and C: the branches that do not depend on B's failure
    }
    assert failed["job_id"] not in {event["job_id"] for event in finished}
    end = events[-1]
    assert end["type"] == "run_finished"
    assert end["success"] is False
    assert "some RuleCalls failed" in end["error"]


def test_without_keep_going_the_error_is_reraised_after_reporting(
    hub: FakeHub, tmp_path: Path
) -> None:
    dag = build_dag(tmp_path / "nodes", ["B"], fail_sample="B")
    with pytest.raises(subprocess.CalledProcessError):
        panoptes_necroflow.run(dag, hub.url)
    _, events = the_run(hub)
    [failed] = by_type(events, "job_failed")
    assert failed["exit_code"] == FAIL_EXIT_CODE
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["success"] is False
    assert "CalledProcessError" in events[-1]["error"]


def test_running_again_unchanged_reports_every_call_cached(hub: FakeHub, tmp_path: Path) -> None:
    panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), hub.url, run_id="first")
    panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), hub.url, run_id="second")
    assert_contract_kept(hub)
    events = hub.events("second")
    assert len(by_type(events, "job_cached")) == CALLS
    assert not by_type(events, "job_started") and not by_type(events, "job_finished")
    assert {event["job_id"] for event in by_type(events, "job_cached")} == {
        event["job_id"] for event in by_type(hub.events("first"), "job_finished")
    }
    assert events[-1]["success"] is True


def test_the_pipelines_own_hooks_still_run(hub: FakeHub, tmp_path: Path) -> None:
    ran: list[str] = []
    rounds: list[int] = []
    completed: list[int] = []

    def runner(call: Any, log_path: Path) -> None:
        ran.append(call.rule.__name__)
        call.run(log_path)

    def scheduler(ready: list[Any], remaining: list[Any], available: dict[str, int]) -> list[Any]:
        rounds.append(len(ready))
        return ready

    panoptes_necroflow.run(
        build_dag(tmp_path / "nodes", SAMPLES),
        hub.url,
        rule_call_runner=runner,
        scheduler=scheduler,
        on_complete=lambda report: completed.append(len(report)),
    )
    assert sorted(ran) == sorted(["make_reference"] + ["fetch_reads", "align"] * 3)
    assert rounds
    assert completed == [CALLS]
    _, events = the_run(hub)
    assert len(by_type(events, "job_finished")) == CALLS


def test_a_dry_run_is_not_reported(hub: FakeHub, tmp_path: Path) -> None:
    panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), hub.url, dry_run=True)
    assert hub.requests == []
    assert not (tmp_path / ".panoptes").exists()


def test_a_bad_address_does_not_cost_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), "ftp://nowhere")
    assert len(result) == CALLS
    assert "not reported" in capsys.readouterr().err


def test_an_unreachable_hub_leaves_a_spool_that_send_spool_delivers(
    hub_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub: FakeHub = hub_factory(start=False)
    result = panoptes_necroflow.run(
        build_dag(tmp_path / "nodes", SAMPLES), hub.url, name="offline", run_id="offline-1"
    )
    assert len(result) == CALLS
    [spool] = (tmp_path / ".panoptes" / "spool").glob("*.jsonl")
    err = capsys.readouterr().err
    assert f"panoptes send-spool {spool} --address {hub.url}" in err.strip().splitlines()[-1]

    hub.start()
    sent = subprocess.run(
        [sys.executable, "-m", "panoptes", "send-spool", str(spool), "--address", hub.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sent.returncode == 0, sent.stderr
    assert not spool.exists()
    assert_contract_kept(hub)
    events = hub.events("offline-1")
    assert hub.engines["offline-1"] == "necroflow"
    assert events[0]["type"] == "run_started"
    assert len(by_type(events, "job_finished")) == CALLS
    assert events[-1]["type"] == "run_finished"


def test_the_next_run_sends_what_an_earlier_one_left(hub_factory: Any, tmp_path: Path) -> None:
    hub: FakeHub = hub_factory(start=False)
    panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), hub.url, run_id="earlier")
    assert list((tmp_path / ".panoptes" / "spool").glob("*.jsonl"))
    hub.start()
    panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), hub.url, run_id="later")
    assert len(by_type(hub.events("earlier"), "job_finished")) == CALLS
    assert len(by_type(hub.events("later"), "job_cached")) == CALLS
    assert not list((tmp_path / ".panoptes" / "spool").glob("*.jsonl"))


def test_a_failing_hub_is_retried_without_duplicates(hub_factory: Any, tmp_path: Path) -> None:
    hub: FakeHub = hub_factory(fail_first=2, fail_status=503)
    panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), hub.url, run_id="retried")
    events = hub.events("retried")
    assert len(by_type(events, "job_finished")) == CALLS
    assert events[-1]["type"] == "run_finished"
    assert len({event["event_id"] for event in events}) == len(events)


def test_a_refused_token_keeps_the_events_on_disk(
    hub_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub: FakeHub = hub_factory(token="right")
    result = panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), hub.url, token="wrong")
    assert len(result) == CALLS
    assert hub.stored == {}
    err = capsys.readouterr().err
    assert "refused the token" in err
    assert "NECROFLOW_PANOPTES_TOKEN" in err
    [spool] = (tmp_path / ".panoptes" / "spool").glob("*.jsonl")
    assert len(spool.read_text().splitlines()) > CALLS


def test_an_older_hub_without_the_event_api_keeps_the_events_on_disk(
    hub_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub: FakeHub = hub_factory()
    hub.events_api = False
    result = panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), hub.url)
    assert len(result) == CALLS
    assert "no event API" in capsys.readouterr().err
    assert list((tmp_path / ".panoptes" / "spool").glob("*.jsonl"))


def test_events_the_hub_refuses_one_by_one_do_not_block_the_rest(
    hub_factory: Any, tmp_path: Path
) -> None:
    hub: FakeHub = hub_factory()
    hub.reject_types = ("job_queued",)
    panoptes_necroflow.run(build_dag(tmp_path / "nodes", SAMPLES), hub.url, run_id="picky")
    types = hub.types("picky")
    assert "job_queued" not in types
    assert types.count("job_finished") == CALLS
    assert types[-1] == "run_finished"


def test_the_command_line_wrapper_reports_necroflow_run(hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "pipeline.py").write_text(EXAMPLE.read_text())
    (tmp_path / "job.toml").write_text(
        '".pipeline" = "pipeline.py:samples_pipeline"\nsamples = ["A", "B", "C"]\n'
    )
    wrapper = Path(sys.executable).with_name("panoptes-necroflow")
    result = subprocess.run(
        [
            str(wrapper), "--panoptes-address", hub.url, "--panoptes-name", "nightly",
            "run", "job.toml", "--nodes-dir", "nodes", "--results-dir", "results", "-c", "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_contract_kept(hub)
    _, events = the_run(hub)
    assert events[0]["name"] == "nightly"
    assert events[0]["command_line"].startswith("necroflow run job.toml")
    assert len(by_type(events, "job_finished")) == CALLS
    assert events[-1]["success"] is True
    # necroflow's own results step (its on_complete) still ran.
    assert len(list((tmp_path / "results").rglob("aligned.txt"))) == len(SAMPLES)


def test_the_command_line_wrapper_keeps_necroflows_exit_code(hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "pipeline.py").write_text(EXAMPLE.read_text())
    (tmp_path / "job.toml").write_text(
        '".pipeline" = "pipeline.py:samples_pipeline"\nsamples = ["A"]\nfail_sample = "A"\n'
    )
    wrapper = Path(sys.executable).with_name("panoptes-necroflow")
    result = subprocess.run(
        [str(wrapper), "--panoptes-address", hub.url, "job.toml", "--nodes-dir", "nodes"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    _, events = the_run(hub)
    assert by_type(events, "job_failed")[0]["exit_code"] == FAIL_EXIT_CODE
    assert events[-1]["success"] is False


def test_the_log_tail_is_bounded_in_lines_and_bytes(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    tail = read_log_tail(log)
    assert tail is not None
    assert tail.splitlines() == [f"line {i}" for i in range(900, 1000)]
    log.write_text("x" * (LOG_TAIL_BYTES * 3) + "\nlast\n")
    tail = read_log_tail(log)
    assert tail is not None
    assert tail == "last"
    assert read_log_tail(tmp_path / "missing.log") is None


def test_send_spool_sends_each_integrations_spool_over_its_own_route(
    hub: FakeHub, tmp_path: Path
) -> None:
    pytest.importorskip("snakemake_logger_plugin_panoptes", reason="the plugin is not installed")
    from panoptes_hub_client import SpoolHeader, write_spool

    snakemake = tmp_path / ".snakemake" / "panoptes" / "s.jsonl"
    write_spool(
        snakemake,
        SpoolHeader(run_id="s", address=hub.url, name="snake"),  # a header without a channel
        [{"event_id": "s:1", "level": "job_info", "jobid": 1, "name": "r", "timestamp": 1.0}],
    )
    events = tmp_path / ".panoptes" / "spool" / "e.jsonl"
    header = SpoolHeader(run_id="e-run", address=hub.url, channel="events", engine="myengine")
    write_spool(events, header, [{"event_id": "e-1", "type": "run_started", "time": 1.0}])
    unknown = tmp_path / "u.jsonl"
    write_spool(unknown, SpoolHeader(run_id="u", address=hub.url, channel="nonesuch"), [{}])

    sent = subprocess.run(
        [
            sys.executable, "-m", "panoptes", "send-spool", str(snakemake), str(events),
            str(unknown), "--address", hub.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert sent.returncode != 0
    assert f"{snakemake}: 1 event(s) delivered." in sent.stdout
    assert f"{events}: 1 event(s) delivered." in sent.stdout
    assert "no installed integration sends 'nonesuch' spool files" in sent.stderr
    assert hub.levels("snake") == ["job_info"]  # the Snakemake batch route, registered by name
    assert hub.types("e-run") == ["run_started"]
    assert hub.engines["e-run"] == "myengine"
    assert unknown.exists() and not snakemake.exists() and not events.exists()


def test_a_call_that_necroflow_retries_is_not_reported_failed(hub: FakeHub, tmp_path: Path) -> None:
    from .pipeline import build_flaky_dag

    marker = tmp_path / "failed-once"
    panoptes_necroflow.run(build_flaky_dag(tmp_path / "nodes", marker), hub.url, run_id="flaky")
    assert marker.exists()  # it did fail once
    events = hub.events("flaky")
    assert [e["attempt"] for e in by_type(events, "job_started")] == [1, 2]
    assert not by_type(events, "job_failed")
    assert len(by_type(events, "job_finished")) == 1
    assert events[-1]["success"] is True


def test_a_run_id_the_hub_would_refuse_leaves_the_run_unreported_but_done(
    hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dag = build_dag(tmp_path / "nodes", SAMPLES)
    result = panoptes_necroflow.run(dag, hub.url, run_id="-not/an id")
    assert len(result) == CALLS
    assert "not reported" in capsys.readouterr().err
    assert hub.requests == []


def test_a_slow_hub_gets_the_rest_from_the_spool_later(hub_factory: Any, tmp_path: Path) -> None:
    from panoptes_hub_client import send_spool

    hub: FakeHub = hub_factory(delay=1.0)
    result = panoptes_necroflow.run(
        build_dag(tmp_path / "nodes", SAMPLES), hub.url, run_id="slow", close_timeout=0.2
    )
    assert len(result) == CALLS  # the run did not wait for the hub beyond close_timeout
    [spool] = (tmp_path / ".panoptes" / "spool").glob("*.jsonl")
    hub.delay = 0.0
    send_spool(spool, hub.url)
    events = hub.events("slow")
    assert len(by_type(events, "job_finished")) == CALLS
    assert by_type(events, "run_finished")[0]["success"] is True
    assert len({event["event_id"] for event in events}) == len(events)


def test_a_hub_down_part_way_gets_everything_once_it_is_back(hub: FakeHub, tmp_path: Path) -> None:
    samples = ["A", "B", "C", "D", "E", "F"]
    (tmp_path / "pipeline.py").write_text(EXAMPLE.read_text())
    (tmp_path / "job.toml").write_text(
        '".pipeline" = "pipeline.py:samples_pipeline"\n'
        f"samples = {json.dumps(samples)}\nstep_seconds = 2\n"
    )
    wrapper = Path(sys.executable).with_name("panoptes-necroflow")
    run = subprocess.Popen(
        [
            str(wrapper), "--panoptes-address", hub.url, "--panoptes-run-id", "outage",
            "--panoptes-close-timeout", "60", "run", "job.toml", "--nodes-dir", "nodes", "-c", "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert hub.wait_for(lambda: "job_finished" in hub.types("outage"), timeout=120)
        hub.stop()
        time.sleep(2.5)  # rule calls go on finishing while nothing listens
        assert run.poll() is None, "the run ended before the hub came back: make it longer"
        hub.start()
        output, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, output
    assert "the hub is not taking events" in output  # told once, on stderr
    types = hub.types("outage")
    assert types.count("job_finished") == 1 + 2 * len(samples)
    assert types[-1] == "run_finished"
    events = hub.events("outage")
    assert len({event["event_id"] for event in events}) == len(events)
    assert not list((tmp_path / ".panoptes" / "spool").glob("*.jsonl"))
