"""Status rules, without an app."""

import pytest

from panoptes.normalize.rules import (
    accepts_job_update,
    after_job_start,
    after_progress,
    after_success,
    next_job_status,
)
from panoptes.normalize.schema import JobPolicy, JobStatus, WorkflowStatus

J = JobStatus
W = WorkflowStatus


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        (None, J.SUBMITTED, J.SUBMITTED),
        (J.PENDING, J.SUBMITTED, J.SUBMITTED),
        (J.SUBMITTED, J.RUNNING, J.RUNNING),
        (J.RUNNING, J.SUBMITTED, J.RUNNING),  # a late SUBMITTED never moves a task back
        (J.RUNNING, J.DONE, J.DONE),
        (J.DONE, J.RUNNING, J.DONE),  # COMPLETED then a late RUNNING
        (J.DONE, J.ERROR, J.DONE),  # terminal is final
        (J.ERROR, J.DONE, J.ERROR),
        (J.CACHED, J.RUNNING, J.CACHED),
        (J.RUNNING, J.ABORTED, J.ABORTED),
    ],
)
def test_tower_tasks_never_move_backwards(current, incoming, expected):
    assert next_job_status(JobPolicy.RETRY_NEW_ID, current, incoming, False) == (expected, False)


def test_snakemake_retry_reuses_the_job_id_and_counts_an_attempt():
    assert next_job_status(JobPolicy.RETRY_REUSES_ID, J.ERROR, J.RUNNING, True) == (J.RUNNING, True)
    # job_finished after job_error for the same id wins
    assert next_job_status(JobPolicy.RETRY_REUSES_ID, J.ERROR, J.DONE, False) == (J.DONE, False)
    # a duplicate job_info on a running job is not a new attempt
    assert next_job_status(JobPolicy.RETRY_REUSES_ID, J.RUNNING, J.RUNNING, True) == (
        J.RUNNING,
        False,
    )
    # nothing restarts a finished job
    assert next_job_status(JobPolicy.RETRY_REUSES_ID, J.DONE, J.RUNNING, True) == (J.DONE, False)
    assert next_job_status(JobPolicy.RETRY_REUSES_ID, J.DONE, J.ERROR, False) == (J.DONE, False)


def test_field_overwrites_follow_the_status_decision():
    assert accepts_job_update(J.RUNNING, J.RUNNING, J.RUNNING)
    assert accepts_job_update(J.RUNNING, None, J.RUNNING)
    assert not accepts_job_update(J.RUNNING, J.SUBMITTED, J.RUNNING)
    assert not accepts_job_update(J.DONE, J.DONE, J.DONE)  # a duplicate of a final update


def test_workflow_rules():
    assert after_job_start(W.ERROR, completed=False) is W.RUNNING
    assert after_job_start(W.ERROR, completed=True) is W.ERROR
    assert after_job_start(W.DONE, completed=True) is W.DONE
    assert after_progress(W.RUNNING, 8, 8) is W.DONE
    assert after_progress(W.ERROR, 8, 8) is W.DONE
    assert after_progress(W.CANCELLED, 3, 3) is W.DONE
    assert after_progress(W.DONE, 5, 7) is W.RUNNING  # a checkpoint grew the DAG
    assert after_progress(W.RUNNING, 0, 0) is W.RUNNING
    assert after_progress(W.ERROR, 4, 8) is W.ERROR
    assert after_success(W.NO_EXECUTION, 0) is W.NO_EXECUTION
    assert after_success(W.ERROR, 3) is W.DONE
