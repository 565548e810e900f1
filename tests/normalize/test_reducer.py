"""The reducer: state transitions of runs and jobs, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from panoptes.normalize import reducer, snakemake, tower
from panoptes.normalize.reducer import RunState
from panoptes.normalize.schema import (
    JobPolicy,
    JobStatus,
    JobUpdate,
    MarkedCancelled,
    Renamed,
    RunCreated,
    ShellCommand,
)
from tests.conftest import load_json

T0 = datetime(2026, 12, 7, tzinfo=UTC)
SNAKEMAKE = JobPolicy.RETRY_REUSES_ID
NEXTFLOW = JobPolicy.RETRY_NEW_ID


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fold(state: RunState, messages, policy=SNAKEMAKE) -> RunState:
    for second, message in enumerate(messages, start=1):
        reducer.apply(state, snakemake.parse_message(message, at(second)), policy, at(second))
    return state


def counters(state: RunState) -> dict[str, int]:
    return {
        status.value: state.run[column]
        for status, column in reducer.COUNTERS.items()
        if state.run[column]
    }


def test_a_new_run_counts_its_jobs_by_status():
    state = fold(
        reducer.new_run("r1", "snakemake", T0),
        [
            {"level": "job_info", "jobid": 1, "name": "a"},
            {"level": "job_info", "jobid": 2, "name": "b"},
            {"level": "job_finished", "jobid": 1},
        ],
    )
    assert state.exists and counters(state) == {"Running": 1, "Done": 1}
    assert state.jobs["1"]["status"] == "Done" and state.jobs["1"]["completed_at"] == at(3)
    assert state.run["updated_at"] == at(3)


def test_a_snakemake_retry_is_a_new_attempt_of_the_same_job_and_revives_the_run():
    state = fold(
        reducer.new_run("r1", "snakemake", T0),
        [
            {"level": "job_info", "jobid": 1, "name": "a"},
            {"level": "job_error", "jobid": 1, "name": "a", "msg": "boom"},
            {"level": "job_info", "jobid": 1, "name": "a"},
        ],
    )
    assert state.jobs["1"]["attempt"] == 2 and state.jobs["1"]["error_message"] is None
    assert state.run["status"] == "Running" and counters(state) == {"Running": 1}


def test_a_late_tower_event_never_moves_a_task_back():
    state = reducer.new_run("n1", "nextflow", T0)
    for second, status in enumerate(["COMPLETED", "RUNNING", "SUBMITTED"], start=1):
        body = {"tasks": [{"taskId": 7, "status": status, "process": "p"}]}
        reducer.apply(state, tower.parse("progress", body, at(second)), NEXTFLOW, at(second))
    assert state.jobs["7"]["status"] == "Done" and counters(state) == {"Done": 1}


def test_a_key_less_shell_command_belongs_to_the_job_announced_last():
    state = reducer.new_run("r1", "snakemake", T0)
    reducer.apply(
        state, [JobUpdate(at=T0, key="3", status=JobStatus.RUNNING, announces=True)], SNAKEMAKE, T0
    )
    reducer.apply(state, [ShellCommand(at=T0, command="echo hi")], SNAKEMAKE, T0)
    assert state.jobs["3"]["command"] == "echo hi"


def test_a_create_of_an_existing_run_starts_it_afresh_and_keeps_its_name():
    state = fold(
        reducer.new_run("r1", "snakemake", T0),
        [
            {"level": "job_info", "jobid": 1, "name": "a"},
            {"level": "progress", "done": 1, "total": 1},
        ],
    )
    state.run["name"] = "nightly"
    assert state.run["status"] == "Done"
    reducer.apply(state, [RunCreated(at=at(9), name="other")], SNAKEMAKE, at(9))
    assert state.jobs_cleared and state.jobs == {} and counters(state) == {}
    assert state.run["status"] == "Running" and state.run["name"] == "nightly"
    assert state.run["completed_at"] is None and state.run["started_at"] == at(9)


def test_a_new_run_takes_the_name_chosen_for_it_and_locks_it():
    state = reducer.new_run("r1", "snakemake", T0)
    reducer.apply(state, [RunCreated(at=T0, name="nightly", name_locked=True)], SNAKEMAKE, T0)
    fold(state, [{"level": "workflow_started", "name": "from-the-engine"}])
    assert state.run["name"] == "nightly"


def test_people_rename_and_cancel():
    state = reducer.new_run("r1", "nextflow", T0)
    reducer.apply(state, [Renamed(at=at(1), name="mine")], NEXTFLOW, at(1))
    reducer.apply(state, [MarkedCancelled(at=at(2))], NEXTFLOW, at(2))
    assert state.run["name"] == "mine" and state.run["name_locked"]
    assert state.run["status"] == "Cancelled" and state.run["completed_at"] == at(2)


def test_the_jobs_to_load_are_those_the_events_name_and_the_last_announced():
    run = {"last_job_key": "9"}
    events = [JobUpdate(at=T0, key="1"), ShellCommand(at=T0, command="x")]
    assert reducer.job_keys_needed(run, events) == {"1", "9"}
    assert reducer.job_keys_needed(run, events[:1]) == {"1"}


def test_the_reducer_knows_every_column_of_runs_and_jobs():
    from panoptes.models import Job, Workflow

    assert set(reducer.RUN_COLUMNS) == {c.key for c in Workflow.__table__.columns} - {"pk"}
    assert len(reducer.RUN_COLUMNS) == len(set(reducer.RUN_COLUMNS))
    assert set(reducer.JOB_COLUMNS) == {c.key for c in Job.__table__.columns} - {
        "pk",
        "workflow_pk",
    }


def test_planned_jobs_without_a_row_are_pending_until_the_run_ends():
    state = fold(
        reducer.new_run("r1", "snakemake", T0),
        [
            {"level": "run_info", "stats": {"a": 2, "b": 1, "total": 3}},
            {"level": "job_info", "jobid": 1, "name": "a"},
        ],
    )
    assert state.run["n_unseen"] == 2 and state.run["progress_total"] == 3
    fold(state, [{"level": "job_info", "jobid": 2, "name": "a"}])
    assert state.run["n_unseen"] == 1
    # A progress total that grew (a checkpoint) plans more.
    fold(state, [{"level": "progress", "done": 0, "total": 5}])
    assert state.run["n_unseen"] == 3
    fold(
        state,
        [{"level": "job_error", "jobid": 1}, {"level": "workflow_finished", "success": False}],
    )
    assert state.run["n_unseen"] == 3  # never ran: "not run" now that the run has ended
    assert state.run["completed_at"] is not None


def test_a_run_that_ends_closes_its_unfinished_jobs():
    state = fold(
        reducer.new_run("r1", "snakemake", T0),
        [
            {"level": "job_info", "jobid": 1, "name": "a"},
            {"level": "job_info", "jobid": 2, "name": "a"},
            {"level": "job_finished", "jobid": 1},
        ],
    )
    assert state.run["open_jobs"] == ["2"]
    interrupted = {"level": "workflow_finished", "success": False, "reason": "interrupted"}
    events = snakemake.parse_message(interrupted, at(10))
    # The next batch loads the open job by its key, though no event names it.
    assert reducer.job_keys_needed(state.run, events) == {"2"}
    later = RunState(run=dict(state.run), jobs={"2": dict(state.jobs["2"])})
    reducer.apply(later, events, SNAKEMAKE, at(10))
    assert later.run["status"] == "Cancelled"
    assert later.jobs["2"]["status"] == "Aborted" and later.jobs["2"]["completed_at"] == at(10)
    assert counters(later) == {"Done": 1, "Aborted": 1}
    assert later.run["open_jobs"] is None
    assert later.run["exit_status"] == 1


def test_a_person_cancelling_aborts_the_running_jobs_and_success_finishes_them():
    state = fold(reducer.new_run("r1", "snakemake", T0), [{"level": "job_info", "jobid": 1}])
    reducer.apply(state, [MarkedCancelled(at=at(5))], SNAKEMAKE, at(5))
    assert state.jobs["1"]["status"] == "Aborted"
    state = fold(reducer.new_run("r2", "snakemake", T0), [{"level": "job_info", "jobid": 1}])
    fold(state, [{"level": "workflow_finished", "success": True}])
    assert state.run["status"] == "Done" and counters(state) == {"Done": 1}


def test_a_transient_job_error_closes_nothing():
    state = fold(
        reducer.new_run("r1", "snakemake", T0),
        [
            {"level": "job_info", "jobid": 1},
            {"level": "job_info", "jobid": 2},
            {"level": "job_error", "jobid": 1},
        ],
    )
    assert state.jobs["2"]["status"] == "Running" and state.run["open_jobs"] == ["2"]


def test_a_retried_job_keeps_each_attempt():
    state = fold(
        reducer.new_run("r1", "snakemake", T0),
        [
            {"level": "job_info", "jobid": 1, "name": "a"},
            {"level": "job_error", "jobid": 1, "error": "boom", "exit_code": 3},
            {"level": "job_info", "jobid": 1, "name": "a"},
            {"level": "job_finished", "jobid": 1},
        ],
    )
    job = state.jobs["1"]
    assert job["attempt"] == 2 and job["status"] == "Done" and job["error_message"] is None
    [first] = job["extra"]["attempts"]
    assert first["attempt"] == 1 and first["status"] == "Error"
    assert first["exit_code"] == 3 and first["error_message"] == "boom"
    assert (first["started_at"], first["completed_at"]) == (
        "2026-12-07T00:00:01.000Z",
        "2026-12-07T00:00:02.000Z",
    )


def test_ignored_tasks_are_counted_apart_and_final_stats_win():
    state = reducer.new_run("r1", "nextflow", T0)
    for name in ["004_task_16_multitask.json", "005_task_78_multitask.json"]:
        body = load_json(f"tower/nf-tower/workflow_multitasks/{name}")
        reducer.apply(state, tower.parse("progress", body, T0), NEXTFLOW, T0)
    assert state.run["n_ignored"] == 2 and state.run["n_error"] == 0
    success = load_json("tower/nf-tower/workflow_success/8_workflow_succeeded.json")
    state = reducer.new_run("r2", "nextflow", T0)
    progress = load_json("tower/nf-tower/workflow_success/2_task_1_submitted.json")
    reducer.apply(state, tower.parse("progress", progress, T0), NEXTFLOW, T0)
    assert state.run["progress_total"] == 16
    reducer.apply(state, tower.parse("complete", success, T0), NEXTFLOW, T0)
    assert (state.run["progress_total"], state.run["progress_done"]) == (4, 4)


def _wms_messages(fixture: str) -> list[dict]:
    recorded = load_json(f"snakemake/{fixture}")
    return [update["msg_decoded"] for update in recorded["updates"]]


def test_snakemake_7_and_8_plans_give_pending_then_not_run_jobs():
    for fixture in ("snakemake7_wms/sm7.31.1_run_success.json", "snakemake8_wms/run_success.json"):
        messages = _wms_messages(fixture)
        first_job = next(i for i, m in enumerate(messages) if m.get("level") == "job_info")
        state = fold(reducer.new_run("r1", "snakemake", T0), messages[: first_job + 1])
        planned = sum(state.run["extra"]["planned_jobs"].values())
        assert planned > 1, fixture
        assert state.run["n_unseen"] == planned - 1, fixture
        fold(state, [{"level": "error", "msg": "WorkflowError: the cluster went away"}])
        assert state.run["completed_at"] is not None and state.run["exit_status"] == 1
        assert state.run["n_unseen"] == planned - 1, fixture  # never ran
        assert counters(state) == {"Aborted": 1}, fixture  # the job running then


def test_an_earlier_attempt_keeps_its_log_tails():
    tail = {"path": "/w/logs/a.log", "text": "oops", "truncated": False}
    state = fold(
        reducer.new_run("r1", "snakemake", T0),
        [
            {"level": "job_info", "jobid": 1, "name": "a"},
            {"level": "job_error", "jobid": 1, "log_tails": [tail]},
            {"level": "job_info", "jobid": 1, "name": "a"},
        ],
    )
    extra = state.jobs["1"]["extra"]
    assert "log_tails" not in extra and extra["attempts"][0]["log_tails"] == [tail]
