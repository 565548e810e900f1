"""The head job of a launch that brings scripts: its pre-run script, the engine, then its
post-run script (Seqera's ``preRunScript`` and ``postRunScript``).

``python -m panoptes.launcher.scripts [--pre FILE] [--post FILE] -- ENGINE ARGV...``

Each script runs with bash in the launch's working directory and the head job's environment.
A failing pre-run script ends the head job with its exit code and the engine never starts.
The post-run script runs however the engine ended and sees its exit code in
``PANOPTES_EXIT_CODE``; the head job ends with the engine's exit code, or with the post-run
script's when the engine succeeded and the script did not.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

EXIT_CODE_VARIABLE = "PANOPTES_EXIT_CODE"


def _run(argv: Sequence[str], env: dict[str, str] | None = None) -> int:
    try:
        code = subprocess.call(list(argv), env=env)
    except OSError as error:
        print(f"panoptes: cannot start {argv[0]}: {error}", file=sys.stderr, flush=True)
        return 127
    return 128 - code if code < 0 else code  # killed by a signal: the shell's convention


def main(arguments: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m panoptes.launcher.scripts",
        description="Run a pre-run script, an engine, then a post-run script.",
    )
    parser.add_argument("--pre", help="the pre-run script (run with bash)")
    parser.add_argument("--post", help="the post-run script (run with bash)")
    parser.add_argument("engine", nargs=argparse.REMAINDER, help="-- then the engine's argv")
    options = parser.parse_args(arguments)
    engine = options.engine[1:] if options.engine[:1] == ["--"] else options.engine
    if not engine:
        parser.error("give the engine's command after --")
    # A stop request (SIGTERM to the process group, or scancel) reaches the engine itself:
    # this process outlives it, so that the post-run script still runs. A handler, not
    # SIG_IGN, which the engine would inherit.
    signal.signal(signal.SIGTERM, lambda *_: None)
    if options.pre:
        code = _run(["bash", options.pre])
        if code != 0:
            print(
                f"panoptes: the pre-run script failed (exit code {code}); "
                "the pipeline was not started",
                file=sys.stderr,
                flush=True,
            )
            return code
    code = _run(engine)
    if options.post:
        post = _run(["bash", options.post], env={**os.environ, EXIT_CODE_VARIABLE: str(code)})
        if post != 0:
            print(
                f"panoptes: the post-run script failed (exit code {post})",
                file=sys.stderr,
                flush=True,
            )
            code = code or post
    return code


if __name__ == "__main__":
    sys.exit(main())
