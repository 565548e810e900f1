"""Tower trace bodies to events, on recorded payloads, without an app."""

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from panoptes.normalize import tower
from panoptes.normalize.schema import (
    JobStatus,
    JobUpdate,
    WorkflowInfo,
    WorkflowOutcome,
    WorkflowProgress,
    WorkflowStatus,
)
from tests.conftest import load_json
from tests.normalize.test_snakemake import json_values

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def test_create_takes_run_name_session_and_instant():
    [info] = tower.parse("create", load_json("tower/modern/00_create_request.json"), NOW)
    assert isinstance(info, WorkflowInfo)
    assert info.name == "nostalgic_pasteur"
    assert info.session_id == "3c0b3c44-5a2c-4d5e-9b8e-6a9e0f1d2c3b"
    assert info.at == datetime.fromtimestamp(1730798130.401, UTC)


def test_begin_metadata():
    [info] = tower.parse("begin", load_json("tower/modern/01_begin_request.json"), NOW)
    assert info.engine_version == "24.10.0"
    assert info.user == "user"
    assert info.work_dir == "/home/user/proj/nf-work"
    assert info.command_line.startswith("nextflow run hello.nf")
    assert info.started_at == datetime(2024, 11, 5, 9, 15, 30, 123456, tzinfo=UTC)


def test_progress_tasks_and_counts():
    events = tower.parse(
        "progress", load_json("tower/modern/03_progress_request_completed.json"), NOW
    )
    [task] = [e for e in events if isinstance(e, JobUpdate)]
    assert task.key == "1" and task.status is JobStatus.DONE
    assert task.fields["name"] == "sayHello"
    assert task.fields["exit_code"] == 0
    assert task.fields["peak_rss"] == 3584000 and task.fields["realtime_ms"] == 12
    assert task.fields["extra"]["hash"] == "3f/8a1b2c"
    [progress] = [e for e in events if isinstance(e, WorkflowProgress)]
    assert (progress.done, progress.total, progress.decides_status) == (1, 1, False)


def test_unfinished_exit_code_is_not_an_exit_code():
    events = tower.parse(
        "progress", load_json("tower/modern/02_progress_request_submitted.json"), NOW
    )
    task = next(e for e in events if isinstance(e, JobUpdate))
    assert task.status is JobStatus.SUBMITTED and "exit_code" not in task.fields


def test_failed_run_outcome_uses_success_not_exit_status():
    body = load_json("tower/nf-tower/workflow_failed/8_workflow_failed.json")
    outcome = next(e for e in tower.parse("complete", body, NOW) if isinstance(e, WorkflowOutcome))
    assert outcome.status is WorkflowStatus.ERROR and outcome.final
    assert outcome.error_message and outcome.error_report


def test_older_task_shape_with_top_level_workflow_id():
    body = load_json("tower/nf-tower/workflow_failed/5_task_1_failed.json")
    [task] = [e for e in tower.parse("progress", body, NOW) if isinstance(e, JobUpdate)]
    assert task.status is JobStatus.ERROR


def test_completed_with_error_action_is_a_failure_unless_ignored():
    assert tower.task_status("COMPLETED", None) is JobStatus.DONE
    assert tower.task_status("COMPLETED", "RETRY") is JobStatus.ERROR
    assert tower.task_status("FAILED", "TERMINATE") is JobStatus.ERROR
    assert tower.task_status("COMPLETED", "IGNORE") is JobStatus.IGNORED
    assert tower.task_status("FAILED", "IGNORE") is JobStatus.IGNORED
    assert tower.task_status("NEW", None) is JobStatus.PENDING
    assert tower.task_status("SOMETHING_NEW", None) is None


def test_odd_bodies_never_raise():
    for kind in tower.KINDS:
        assert tower.parse(kind, {}, NOW)
        assert tower.parse(kind, {"tasks": "x", "progress": [], "workflow": 3}, NOW)
        assert tower.parse(kind, [], NOW)
    events = tower.parse(
        "progress", {"tasks": [{"taskId": "x"}, 5, {"taskId": 7, "status": None}]}, NOW
    )
    assert [e.key for e in events if isinstance(e, JobUpdate)] == ["7"]


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(tower.KINDS),
    body=st.dictionaries(
        st.sampled_from(["workflow", "tasks", "progress", "metrics", "instant", "dag", "runName"]),
        json_values,
        max_size=6,
    ),
)
def test_never_raises_on_any_json(kind, body):
    assert tower.parse(kind, body, NOW)


@settings(max_examples=200, deadline=None)
@given(
    task=st.dictionaries(
        st.sampled_from(
            [
                "taskId",
                "status",
                "exit",
                "submit",
                "start",
                "complete",
                "memory",
                "cpus",
                "peakRss",
                "pcpu",
                "process",
                "tag",
                "script",
                "errorAction",
            ]
        ),
        json_values,
        max_size=10,
    )
)
def test_never_raises_on_any_task(task):
    assert tower.parse("progress", {"tasks": [task]}, NOW)


def test_documents_of_a_body_are_made_storable():
    odd = {"progress": {"pending": 1, "note": "a\x00b"}}
    [progress] = tower.parse("heartbeat", odd, NOW)
    assert isinstance(progress, WorkflowProgress) and progress.detail["note"] == "ab"


def test_recorded_ignored_tasks_are_ignored_not_failed():
    body = load_json("tower/nf-tower/workflow_multitasks/004_task_16_multitask.json")
    tasks = {e.key: e for e in tower.parse("progress", body, NOW) if isinstance(e, JobUpdate)}
    assert tasks["6"].status is JobStatus.IGNORED
    assert tasks["1"].status is JobStatus.RUNNING


def test_final_stats_give_the_counts_after_complete():
    body = load_json("tower/nf-tower/workflow_success/8_workflow_succeeded.json")
    [outcome] = [e for e in tower.parse("complete", body, NOW) if isinstance(e, WorkflowOutcome)]
    assert outcome.final_counts == (4, 4)
    multitasks = load_json("tower/nf-tower/workflow_multitasks/017_workflow_succeeded.json")
    [outcome] = [
        e for e in tower.parse("complete", multitasks, NOW) if isinstance(e, WorkflowOutcome)
    ]
    assert outcome.final_counts == (15, 12)  # 12 succeeded and 3 ignored
    assert tower.final_counts({"computeTimeFmt": "x"}) is None
