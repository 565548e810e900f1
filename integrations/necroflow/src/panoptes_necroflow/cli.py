"""``panoptes-necroflow``: ``necroflow run`` reported to a panoptes hub, no code changes.

    panoptes-necroflow --panoptes-address http://127.0.0.1:5000 [--panoptes-name NAME] \\
        -- run job.toml --nodes-dir nodes --results-dir results ...

Everything after the ``--panoptes-*`` options is given to necroflow's own command line
unchanged. ``necroflow run`` builds the DAG from the job files and makes one call of
``DAG.run(...)``; for the duration of the command that public method goes through
:func:`panoptes_necroflow.run`, which adds its hooks to the ones the command line passes
(its ``--scheduler`` and its results step keep working). Exit codes are necroflow's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="panoptes-necroflow",
        allow_abbrev=False,
        description="Run necroflow's command line and report the run to a panoptes hub. "
        "Arguments other than the --panoptes-* options go to necroflow unchanged.",
    )
    parser.add_argument(
        "--panoptes-address",
        default=os.environ.get("NECROFLOW_PANOPTES_ADDRESS"),
        help="URL of the hub, e.g. http://127.0.0.1:5000 (or $NECROFLOW_PANOPTES_ADDRESS).",
    )
    parser.add_argument(
        "--panoptes-name", default=None, help="Run name shown by the hub (default: job files)."
    )
    parser.add_argument(
        "--panoptes-token",
        default=None,
        help="Hub access token; prefer $NECROFLOW_PANOPTES_TOKEN (kept off the command line).",
    )
    parser.add_argument(
        "--panoptes-run-id",
        default=None,
        help="The run's id on the hub (1-64 characters of A-Z a-z 0-9 _ . -; default: new).",
    )
    parser.add_argument(
        "--panoptes-close-timeout",
        type=float,
        default=5.0,
        help="Seconds the end of the run may wait for the hub; the rest is kept in "
        ".panoptes/spool/ and sent later (default: 5).",
    )
    return parser


@contextlib.contextmanager
def reporting(options: argparse.Namespace, necroflow_args: Sequence[str]) -> Iterator[None]:
    """Route ``DAG.run`` through :func:`panoptes_necroflow.run` while the block runs."""
    from necroflow.dag import DAG  # type: ignore[import-untyped]

    from . import run

    original = DAG.run
    name = options.panoptes_name or _default_name(necroflow_args)
    command_line = " ".join(["necroflow", *necroflow_args])

    def reported_run(self: Any, **kwargs: Any) -> Any:
        # Restored first: the reporter calls DAG.run itself.
        DAG.run = original
        try:
            self.last_execution_report = run(
                self,
                options.panoptes_address,
                name=name,
                token=options.panoptes_token,
                run_id=options.panoptes_run_id,
                close_timeout=options.panoptes_close_timeout,
                command_line=command_line,
                **kwargs,
            )
            return self.last_execution_report
        finally:
            DAG.run = reported_run

    DAG.run = reported_run
    try:
        yield
    finally:
        DAG.run = original


def _default_name(args: Sequence[str]) -> str | None:
    jobs = [Path(arg).stem for arg in args if arg.endswith(".toml") and not arg.startswith("-")]
    return " ".join(jobs) or None


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the ``--panoptes-*`` options, then run necroflow's command line, reported."""
    from necroflow.cli import main as necroflow_main  # type: ignore[import-untyped]

    args = list(sys.argv[1:] if argv is None else argv)
    options, rest = _parser().parse_known_args(args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not options.panoptes_address:
        print(
            "[panoptes] no --panoptes-address (nor $NECROFLOW_PANOPTES_ADDRESS): "
            "running necroflow unreported",
            file=sys.stderr,
        )
        necroflow_main(rest)
        return
    with reporting(options, rest):
        necroflow_main(rest)


if __name__ == "__main__":
    main()
