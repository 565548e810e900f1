"""Record → event conversion and outcome detection, on records recorded from Snakemake 9.27.1."""

from __future__ import annotations

import enum
import json
import logging
import uuid
from pathlib import Path

import pytest

pytest.importorskip(
    "snakemake_logger_plugin_panoptes",
    reason="the logger plugin is not installed: pip install -e ./snakemake_logger_plugin",
)
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_logger_plugin_panoptes.events import (
    OutcomeTracker,
    RecordConverter,
    resources_to_dict,
    to_plain,
)

from .conftest import load_records, make_record


def convert_all(name: str, converter: RecordConverter | None = None) -> list[dict]:
    converter = converter or RecordConverter("run")
    return [event for record in load_records(name) for event in converter.convert(record)]


def by_level(events: list[dict], level: str) -> list[dict]:
    return [event for event in events if event["level"] == level]


class Color(enum.Enum):
    RED = "red"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_to_plain_copies_live_objects_into_json_values() -> None:
    run = uuid.UUID("a119be8b-dad2-4983-af11-8786e0168def")
    value = {
        "uuid": run,
        "enum": Color.RED,
        "path": Path("/tmp/x"),
        "tuple": (1, 2.5, None, True),
        "set": {"only"},
        1: "int key",
        "nan": float("nan"),
        "bytes": b"abc",
        "object": Unprintable(),
    }
    plain = to_plain(value)
    assert plain == {
        "uuid": str(run),
        "enum": "red",
        "path": "/tmp/x",
        "tuple": [1, 2.5, None, True],
        "set": ["only"],
        "1": "int key",
        "nan": "nan",
        "bytes": "abc",
        "object": "<unprintable Unprintable>",
    }
    json.dumps(plain)


def test_resources_by_name_without_cores_and_nodes() -> None:
    record = next(r for r in load_records("success") if getattr(r, "jobid", None) == 4)
    assert type(record.resources).__name__ == "ResourceList"  # a live object, as in a run
    resources = resources_to_dict(record.resources)
    assert "_cores" not in resources
    assert "_nodes" not in resources
    assert resources["mem_mb"] == 100
    assert resources["tmpdir"] == "/tmp"


def test_success_run_converts_to_the_expected_levels() -> None:
    events = convert_all("success")
    levels = [event["level"] for event in events]
    assert levels[:3] == ["workflow_started", "rulegraph", "run_info"]
    assert levels.count("job_info") == 8
    assert levels.count("job_started") == 6
    assert levels.count("job_finished") == 8
    assert levels.count("progress") == 8
    # "Shell command: None" of rule all is not sent; the 7 real commands are.
    assert levels.count("shellcmd") == 7
    assert levels[-1] == "info"  # "Complete log(s): ..."
    assert "error" not in levels
    # Every event is plain JSON, numbered in order, with the record's time.
    json.dumps(events)
    assert [event["event_id"] for event in events] == [
        f"run:{i}" for i in range(1, len(events) + 1)
    ]
    assert all(isinstance(event["timestamp"], float) for event in events)


def test_workflow_started_metadata() -> None:
    started = convert_all("success", RecordConverter("run", name="nightly"))[0]
    assert (
        started["snakefile"] == "/home/user/project/runs/panoptes_success_printshellcmds/Snakefile"
    )
    assert started["command"].startswith("/home/user/project/.venv/bin/snakemake --cores 2")
    assert started["workdir"] == "/home/user/project/runs/panoptes_success_printshellcmds"
    assert (started["host"], started["user"]) == ("vm", "root")
    assert started["snakemake_version"] == "9.27.1"
    assert started["name"] == "nightly"
    assert started["config"] is None
    assert started["configfiles"] == []
    assert uuid.UUID(started["snakemake_run_id"]).version == 4


def test_rulegraph_and_run_info() -> None:
    events = convert_all("success")
    graph = by_level(events, "rulegraph")[0]["rulegraph"]
    assert [node["rule"] for node in graph["nodes"]] == [
        "make_sample",
        "process",
        "summarize",
        "all",
    ]
    assert graph["links"][0] == {"source": 0, "target": 1, "sourcerule": "make_sample",
                                 "targetrule": "process"}  # fmt: skip
    run_info = by_level(events, "run_info")[0]
    assert run_info["stats"]["total"] == 8
    assert run_info["msg"].startswith("Job stats:")


def test_job_info_carries_everything_the_hub_shows() -> None:
    events = convert_all("success")
    job = next(event for event in by_level(events, "job_info") if event["jobid"] == 4)
    assert job["name"] == "process"
    assert job["msg"] == "Processing sample B"
    assert job["input"] == ["data/B.txt"]
    assert job["output"] == ["results/B.processed.txt"]
    assert job["log"] == ["logs/process/B.log"]
    assert job["wildcards"] == {"sample": "B"}
    assert job["resources"]["mem_mb"] == 100
    assert job["threads"] == 1
    assert job["priority"] == 0
    assert job["reason"].startswith("Missing output files")
    assert "tr a-z A-Z" in job["shellcmd"]
    assert (job["is_checkpoint"], job["local"], job["benchmark"]) == (False, True, None)


def test_shellcmd_is_tied_to_the_job_info_before_it() -> None:
    events = convert_all("success")
    for index, event in enumerate(events):
        if event["level"] == "shellcmd":
            previous = events[index - 1]
            assert previous["level"] == "job_info"
            assert event["jobid"] == previous["jobid"]
            assert event["msg"] == previous["shellcmd"]


def test_job_finished_reads_job_id() -> None:
    finished = by_level(convert_all("success"), "job_finished")
    assert [event["jobid"] for event in finished] == [5, 7, 4, 6, 3, 2, 1, 0]


def test_failure_run_sends_the_full_error_text() -> None:
    events = convert_all("failure")
    errors = by_level(events, "error")
    assert [error["exception"] for error in errors] == ["RuleException", "WorkflowError"]
    assert errors[0]["msg"].startswith("RuleException:\nCalledProcessError in file")
    assert "returned non-zero exit status 3" in errors[0]["msg"]
    assert errors[1]["msg"] == "WorkflowError:\nAt least one job did not complete successfully."
    job_error = by_level(events, "job_error")[0]
    assert job_error["jobid"] == 4
    assert job_error["name"] == "process"
    assert job_error["msg"] == "Error in rule process, jobid: 4"  # no rule message: the record's
    assert job_error["log"] == ["logs/process/B.log"]
    assert job_error["input"] == ["data/B.txt"]
    assert "exit 3" in job_error["shellcmd"]
    assert (job_error["conda_env"], job_error["aux"]) == (None, {})
    # The job's own error text and exit status, from the RuleException logged just before.
    assert job_error["error"] == errors[0]["msg"]
    assert job_error["exit_code"] == 3
    infos = [event["msg"] for event in by_level(events, "info")]
    assert any(msg.startswith("Exiting because a job execution failed") for msg in infos)


def test_uninteresting_plain_lines_are_not_sent() -> None:
    converter = RecordConverter("run")
    for text in ("Building DAG of jobs...", "Select jobs to execute...", "Elapsed time: 0:01"):
        assert converter.convert(make_record(text)) == []
    assert converter.convert(make_record("Trying to restart job 4."))[0]["level"] == "info"


def test_records_from_the_interface_test_suite_convert() -> None:
    """Records shaped like TestLogHandlerBase's (extra keys Snakemake never sets)."""
    converter = RecordConverter("run")
    error = make_record(
        "TestError in rule test_rule", logging.ERROR, event=LogEvent.ERROR, exception="TestError",
        location="Snakefile, line 10", rule="test_rule", traceback="Traceback ...",
    )  # fmt: skip
    assert converter.convert(error)[0]["msg"] == "TestError in rule test_rule"
    graph = make_record("", event=LogEvent.RULEGRAPH, rulegraph={"a": ["b"]})
    assert converter.convert(graph)[0]["rulegraph"] == {"a": ["b"]}
    group = make_record("group", event=LogEvent.GROUP_INFO, group_id=0, jobs=[object()])
    assert converter.convert(group) == []


# -- outcome ----------------------------------------------------------------------------


def outcome_of(events: list[dict], exc_type: type[BaseException] | None = None) -> tuple:
    tracker = OutcomeTracker()
    for event in events:
        tracker.observe(event)
    verdict = tracker.verdict(exc_type)
    return verdict.success, verdict.reason, verdict.message


def test_outcome_success() -> None:
    assert outcome_of(convert_all("success")) == (True, "success", None)


def test_outcome_failure_keeps_the_final_error_text() -> None:
    success, reason, message = outcome_of(convert_all("failure"))
    assert (success, reason) == (False, "failure")
    assert message == "WorkflowError:\nAt least one job did not complete successfully."


def test_outcome_retry_that_succeeds_is_a_success() -> None:
    events = [
        {"level": "error", "exception": "RuleException", "msg": "RuleException: boom"},
        {"level": "job_error", "jobid": 4, "msg": "Error in rule count, jobid: 4"},
        {"level": "info", "msg": "Trying to restart job 4."},
        {"level": "job_info", "jobid": 4},
        {"level": "job_finished", "jobid": 4},
    ]
    assert outcome_of(events) == (True, "success", None)


def test_outcome_failed_job_without_final_error_is_a_failure() -> None:
    events = [{"level": "job_error", "jobid": 2, "msg": "Error in rule trim, jobid: 2"}]
    assert outcome_of(events) == (False, "failure", "Error in rule trim, jobid: 2")


def test_outcome_nothing_to_do() -> None:
    line = "Nothing to be done (all requested files are present and up to date)."
    events = RecordConverter("run").convert(make_record(line))
    assert outcome_of(events) == (True, "nothing_to_do", None)


@pytest.mark.parametrize(
    "line",
    [
        "Terminating processes on user request, this might take some time.",
        "Will exit after finishing currently running jobs (scheduler).",
    ],
)
def test_outcome_interrupted_wins_over_the_failure_it_causes(line: str) -> None:
    converter = RecordConverter("run")
    events = converter.convert(make_record(line))
    events.append({"level": "error", "exception": "WorkflowError", "msg": "WorkflowError: ..."})
    success, reason, message = outcome_of(events)
    assert (success, reason, message) == (False, "interrupted", line)


def test_outcome_keyboard_interrupt_unwinding() -> None:
    assert outcome_of([], KeyboardInterrupt)[:2] == (False, "interrupted")


def test_job_errors_find_their_own_error_text_when_failures_interleave() -> None:
    converter = RecordConverter("run")

    def rule_error(command: str, status: int) -> logging.LogRecord:
        text = (
            "RuleException:\nCalledProcessError in file Snakefile, line 3:\n"
            f"Command 'set -euo pipefail;  {command}' returned non-zero exit status {status}."
        )
        return make_record(text, logging.ERROR, event=LogEvent.ERROR, exception="RuleException")

    def job_error(jobid: int, command: str) -> logging.LogRecord:
        return make_record(
            f"Error in rule r, jobid: {jobid}", logging.ERROR, event=LogEvent.JOB_ERROR,
            jobid=jobid, rule_name="r", shellcmd=command,
        )  # fmt: skip

    records = [rule_error("exit 3", 3), rule_error("exit 7", 7), job_error(2, "exit 7"),
               job_error(1, "exit 3")]  # fmt: skip
    events = [event for record in records for event in converter.convert(record)]
    codes = {event["jobid"]: event["exit_code"] for event in by_level(events, "job_error")}
    assert codes == {1: 3, 2: 7}


def test_a_benchmark_file_and_a_log_tail_are_read_bounded(tmp_path):
    from snakemake_logger_plugin_panoptes.events import log_tail, read_benchmark

    bench = tmp_path / "b.tsv"
    bench.write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        "1.5\t0:00:01\t12.5\t40\tNA\tNA\t0.1\t2\t80\t1.2\n"
    )
    assert read_benchmark(bench) == {
        "s": 1.5, "max_rss": 12.5, "max_vms": 40.0, "io_in": 0.1, "io_out": 2.0,
        "mean_load": 80.0, "cpu_time": 1.2,
    }  # fmt: skip
    assert read_benchmark(tmp_path / "missing.tsv") is None
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(500)))
    tail = log_tail(log, max_lines=100, max_bytes=32 * 1024)
    assert tail is not None and tail["truncated"] is True
    assert tail["text"].splitlines() == [f"line {i}" for i in range(400, 500)]
    log.write_text("x" * 100_000)
    tail = log_tail(log, max_lines=100, max_bytes=1024)
    assert tail is not None and len(tail["text"]) <= 1024 and tail["truncated"] is True
