"""Snakemake messages to events, on recorded payloads, without an app."""

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from panoptes.normalize import snakemake
from panoptes.normalize.schema import (
    Heartbeat,
    JobStatus,
    JobUpdate,
    Reconcile,
    ShellCommand,
    WorkflowOutcome,
    WorkflowProgress,
    WorkflowStatus,
)
from tests.conftest import load_json, load_jsonl

NOW = datetime(2026, 11, 21, 22, 48, tzinfo=UTC)


def messages(capture: str) -> list[dict]:
    return [r["msg_json"] for r in load_jsonl(capture) if "msg_json" in r]


def test_decode_msg_accepts_json_python_literals_and_nothing_else():
    assert snakemake.decode_msg('{"level": "info"}') == {"level": "info"}
    assert snakemake.decode_msg("{'level': 'info', 'ok': True}") == {"level": "info", "ok": True}
    assert snakemake.decode_msg("__import__('os').system('true')") is None
    assert snakemake.decode_msg("[1, 2]") is None
    assert snakemake.decode_msg(42) is None


def test_plugin_job_info_carries_rule_files_wildcards_and_resources():
    job_info = next(
        m for m in messages("snakemake/panoptes_success.jsonl") if m["level"] == "job_info"
    )
    [update] = snakemake.parse_message(job_info, NOW)
    assert isinstance(update, JobUpdate)
    assert update.status is JobStatus.RUNNING and update.starts_attempt and update.announces
    assert update.key == str(job_info["jobid"])
    assert update.fields["name"] == job_info["name"]
    assert update.fields["wildcards"] == job_info["wildcards"]
    assert update.fields["outputs"] == job_info["output"]
    assert "_cores" not in update.fields["resources"]


def test_plugin_job_started_lists_several_jobs_before_their_job_info():
    started = next(
        m for m in messages("snakemake/panoptes_success.jsonl") if m["level"] == "job_started"
    )
    updates = snakemake.parse_message(started, NOW)
    assert [u.key for u in updates] == [str(j) for j in started["jobs"]]
    assert all(u.status is JobStatus.RUNNING for u in updates)


def test_legacy_messages_use_the_client_timestamp_and_unnamed_resources():
    job_info = next(
        m for m in messages("snakemake/legacy_success.jsonl") if m["level"] == "job_info"
    )
    [update] = snakemake.parse_message(job_info, NOW)
    assert update.at == datetime.fromtimestamp(job_info["timestamp"], UTC)
    assert update.fields["resources"] == {"values": job_info["resources"]}


def test_legacy_shellcmd_without_jobid_belongs_to_the_last_job():
    shell = next(m for m in messages("snakemake/legacy_success.jsonl") if m["level"] == "shellcmd")
    [event] = snakemake.parse_message(shell, NOW)
    assert isinstance(event, ShellCommand) and event.command == shell["msg"]


def test_job_errors_are_transient_and_the_final_error_is_not():
    failure = messages("snakemake/panoptes_failure.jsonl")
    job_error = next(m for m in failure if m["level"] == "job_error")
    events = snakemake.parse_message(job_error, NOW)
    assert events[0].status is JobStatus.ERROR
    assert isinstance(events[1], WorkflowOutcome) and not events[1].final
    errors = [snakemake.parse_message(m, NOW)[0] for m in failure if m["level"] == "error"]
    assert [e.final for e in errors] == [False, True]  # RuleException, then WorkflowError
    assert errors[-1].status is WorkflowStatus.ERROR and errors[-1].completed_at == NOW


def test_full_error_text_from_snakemake_7_is_kept_as_the_report():
    text = "RuleException:\nCalledProcessError in file /x/Snakefile, line 3:\nexit status 3"
    [outcome] = snakemake.parse_message({"level": "error", "msg": text}, NOW)
    assert outcome.error_message == "RuleException:" and outcome.error_report == text
    assert not outcome.final


def test_progress_nothing_to_do_and_success():
    [progress] = snakemake.parse_message({"level": "progress", "done": 2, "total": 8}, NOW)
    assert progress == WorkflowProgress(at=NOW, done=2, total=8, decides_status=True)
    [nothing] = snakemake.parse_message(
        {
            "level": "info",
            "msg": "Nothing to be done (all requested files are present and up to date).",
        },
        NOW,
    )
    assert nothing.status is WorkflowStatus.NO_EXECUTION
    assert snakemake.parse_message({"level": "workflow_success"}, NOW) == [Reconcile(at=NOW)]


def test_job_finished_accepts_both_spellings_of_the_id():
    for key in ("jobid", "job_id"):
        [update] = snakemake.parse_message({"level": "job_finished", key: 4}, NOW)
        assert update.key == "4" and update.status is JobStatus.DONE


def test_our_plugin_levels():
    [info] = snakemake.parse_message(
        {
            "level": "workflow_started",
            "snakefile": "/p/Snakefile",
            "command": "snakemake -c1",
            "workdir": "/p",
            "host": "node1",
            "user": "ada",
            "config": {"a": 1},
            "snakemake_version": "9.27.1",
            "configfiles": ["config.yaml"],
            "config_md5": "abc",
        },
        NOW,
    )
    assert info.extra == {"configfiles": ["config.yaml"], "config_md5": "abc"}
    assert (info.host, info.user, info.config, info.engine_version) == (
        "node1",
        "ada",
        {"a": 1},
        "9.27.1",
    )
    [cancelled] = snakemake.parse_message(
        {"level": "workflow_finished", "reason": "interrupted"}, NOW
    )
    assert cancelled.status is WorkflowStatus.CANCELLED
    [failed] = snakemake.parse_message(
        {"level": "workflow_finished", "success": False, "reason": "failure", "message": "boom"},
        NOW,
    )
    assert failed.status is WorkflowStatus.ERROR and failed.final and failed.error_message == "boom"


def test_unknown_levels_and_odd_values_are_heartbeats_not_errors():
    for msg in (
        {"level": "host"},
        {"level": "dag_debug", "job": "all"},
        {"level": "brand_new_level", "x": [1, 2]},
        {"level": None},
        {"no_level": True},
        {"level": "job_info", "jobid": None},
        {"level": "job_finished", "jobid": {"nested": 1}},
        {"level": "progress", "done": "many"},
    ):
        assert all(isinstance(e, Heartbeat) for e in snakemake.parse_message(msg, NOW)), msg


def test_every_recorded_message_parses():
    for capture in ("panoptes_success.jsonl", "panoptes_failure.jsonl", "legacy_success.jsonl"):
        for msg in messages(f"snakemake/{capture}"):
            assert snakemake.parse_message(msg, NOW)
    for run in ("snakemake8_wms/run_success.json", "snakemake7_wms/sm7.31.1_run_success.json"):
        for update in load_json(f"snakemake/{run}")["updates"]:
            assert snakemake.parse_message(snakemake.decode_msg(update["envelope"]["msg"]), NOW)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
levels = st.sampled_from([*snakemake._HANDLERS, "other"])


@settings(max_examples=300, deadline=None)
@given(
    level=levels,
    payload=st.dictionaries(
        st.sampled_from(
            [
                "msg",
                "jobid",
                "job_id",
                "jobs",
                "done",
                "total",
                "timestamp",
                "wildcards",
                "resources",
                "input",
                "output",
                "log",
                "threads",
                "shellcmd",
                "name",
                "rulegraph",
                "success",
                "reason",
                "exception",
                "config",
            ]
        ),
        json_values,
        max_size=8,
    ),
)
def test_never_raises_on_any_json(level, payload):
    assert snakemake.parse_message({"level": level, **payload}, NOW)


@settings(max_examples=300, deadline=None)
@given(
    resources=st.dictionaries(
        st.sampled_from(["mem_mb", "mem_mib", "runtime", "disk_mb", "_cores", "tmpdir"]),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        max_size=6,
    )
)
def test_job_info_never_raises_on_any_resources(resources):
    [update] = snakemake.parse_message(
        {"level": "job_info", "jobid": 1, "resources": resources}, NOW
    )
    assert update.key == "1"


def test_documents_of_a_message_are_made_storable():
    odd = {"level": "job_info", "jobid": 1, "wildcards": {"sample": "a\x00b"}}
    [update] = snakemake.parse_message(odd, NOW)
    assert isinstance(update, JobUpdate) and update.fields["wildcards"] == {"sample": "ab"}


def test_run_info_gives_the_planned_jobs_per_rule_and_in_all():
    text = (
        "Job stats:\njob        count\n-------  -------\nall            1\n"
        "gather         1\nprocess        3\ntotal          5\n"
    )
    for message in (
        {"level": "run_info", "msg": text},  # Snakemake 7/8 and the upstream plugin
        {"level": "run_info", "msg": text, "stats": {"all": 1, "gather": 1, "process": 3}},
    ):
        progress, info = snakemake.parse_message(message, NOW)
        assert (progress.done, progress.total, progress.decides_status) == (None, 5, False)
        assert info.extra == {"planned_jobs": {"all": 1, "gather": 1, "process": 3}}
    assert isinstance(snakemake.parse_message({"level": "run_info", "msg": "x"}, NOW)[0], Heartbeat)
