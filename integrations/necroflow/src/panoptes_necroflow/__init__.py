"""Report necroflow runs to a panoptes hub.

Replace ``dag.run(**kwargs)`` with::

    import panoptes_necroflow
    panoptes_necroflow.run(dag, "http://127.0.0.1:5000", name="my-run", token=None, **kwargs)

It returns what ``dag.run`` returns and re-raises what it raises, after reporting the run's
start (with its steps), each rule call's start, success, failure (exit code, tail of its
``job.log``) and cache hit, and the run's end. Reporting never fails or slows the pipeline:
events are sent by a background thread; what the hub does not take within ``close_timeout``
seconds at the end is kept in ``.panoptes/spool/`` and sent by the next reported run there,
or by ``panoptes send-spool``. Command-line users: ``panoptes-necroflow`` (``cli.py``).
"""

from __future__ import annotations

import os
from typing import Any

from .reporter import ENGINE, Reporter, job_id, read_log_tail, spool_directory

__all__ = ["ENGINE", "Reporter", "job_id", "read_log_tail", "run", "spool_directory"]


def run(
    dag: Any,
    address: str,
    name: str | None = None,
    token: str | None = None,
    *,
    run_id: str | None = None,
    close_timeout: float = 5.0,
    timeout: float = 10.0,
    command_line: str | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``dag`` like ``dag.run(**kwargs)`` and report it to the hub at ``address``.

    ``token`` defaults to ``$NECROFLOW_PANOPTES_TOKEN``; ``run_id`` (1-64 characters of
    ``[A-Za-z0-9_.-]``) names the run on the hub, a fresh one by default. A dry run is
    not reported. The pipeline's own ``rule_call_runner``, ``scheduler`` and
    ``on_complete`` keep working: they are wrapped, not replaced.
    """
    if kwargs.get("dry_run"):
        return dag.run(**kwargs)
    if token is None:
        token = os.environ.get("NECROFLOW_PANOPTES_TOKEN") or None
    try:
        reporter = Reporter(
            dag,
            address,
            name=name,
            token=token,
            run_id=run_id,
            command_line=command_line,
            timeout=timeout,
            close_timeout=close_timeout,
        )
    except ValueError as exc:
        # A bad address must not cost the user their run.
        from panoptes_hub_client import Notifier

        Notifier().say(f"{exc}; this run is not reported")
        return dag.run(**kwargs)
    kwargs = hooked(reporter, kwargs)
    reporter.run_started({k: v for k, v in kwargs.items() if k not in _HOOKS})
    try:
        result = dag.run(**kwargs)
    except BaseException as exc:
        reporter.finish(error=exc)
        raise
    reporter.finish(report=result)
    return result


_HOOKS = ("rule_call_runner", "scheduler", "on_complete")


def hooked(reporter: Reporter, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for ``necroflow.run`` with its hooks wrapped by ``reporter``."""
    from necroflow import RuleCall, fifo_scheduler  # type: ignore[import-untyped]

    hooks = dict(kwargs)
    hooks["rule_call_runner"] = reporter.wrap_runner(hooks.get("rule_call_runner") or RuleCall.run)
    hooks["scheduler"] = reporter.wrap_scheduler(hooks.get("scheduler") or fifo_scheduler)
    hooks["on_complete"] = reporter.wrap_on_complete(hooks.get("on_complete"))
    return hooks
