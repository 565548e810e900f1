"""Status rules: pure functions, so every transition is unit-tested without a database.

See docs/ARCHITECTURE.md, "Status rules", for the table these implement.
"""

from __future__ import annotations

from .schema import TERMINAL_JOB_STATUSES, JobPolicy, JobStatus, WorkflowStatus

_JOB_RANK = {
    JobStatus.PENDING: 0,
    JobStatus.SUBMITTED: 1,
    JobStatus.RUNNING: 2,
}


def _rank(status: JobStatus) -> int:
    return _JOB_RANK.get(status, 3)


def next_job_status(
    policy: JobPolicy, current: JobStatus | None, incoming: JobStatus, starts_attempt: bool
) -> tuple[JobStatus, bool]:
    """The status a job moves to, and whether the change starts a new attempt.

    A late or duplicated event never moves a job backwards. Where a retry reuses the job id
    (Snakemake), an Error job that starts again is a new attempt, and ``job_finished`` after
    ``job_error`` wins. Where every retry is a new id (Nextflow), terminal states are final.
    """
    if current is None:
        return incoming, False
    if policy is JobPolicy.RETRY_REUSES_ID:
        if current is JobStatus.DONE:
            return current, False
        if current is JobStatus.ERROR:
            if incoming is JobStatus.DONE:
                return incoming, False
            if starts_attempt and _rank(incoming) < 3:
                return incoming, True
            return current, False
    elif current in TERMINAL_JOB_STATUSES:
        return current, False
    if _rank(incoming) < _rank(current):
        return current, False
    return incoming, False


def accepts_job_update(
    current: JobStatus | None, incoming: JobStatus | None, result: JobStatus
) -> bool:
    """Whether an update's fields may overwrite stored values (else they only fill gaps)."""
    if incoming is None or current is None:
        return True
    return result is incoming and (result is not current or current not in TERMINAL_JOB_STATUSES)


def after_job_start(status: WorkflowStatus, completed: bool) -> WorkflowStatus:
    """A job starting revives a run whose Error was transient (a retry, ``--keep-going``)."""
    if status is WorkflowStatus.ERROR and not completed:
        return WorkflowStatus.RUNNING
    return status


def after_progress(status: WorkflowStatus, done: int | None, total: int | None) -> WorkflowStatus:
    """Progress ``done == total > 0`` means Done from any status (as panoptes does);
    a total that grows past ``done`` again (checkpoints) re-opens a Done run."""
    if done is None or total is None or total <= 0:
        return status
    if done >= total:
        return WorkflowStatus.DONE
    if status is WorkflowStatus.DONE:
        return WorkflowStatus.RUNNING
    return status


def after_success(status: WorkflowStatus, job_rows: int) -> WorkflowStatus:
    """The engine says the run succeeded; "nothing to be done" stays No Execution."""
    if status is WorkflowStatus.NO_EXECUTION and job_rows == 0:
        return status
    return WorkflowStatus.DONE
