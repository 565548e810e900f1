"""``python -m panoptes.launcher.scripts``: the pre-run script, the engine, the post-run script,
in that order, and the exit code each outcome gives the head job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from panoptes.launcher.scripts import main


def script(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture
def trail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file each step appends its name to, in a launch's working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path / "trail"


def engine(exit_code: int) -> list[str]:
    return ["--", "bash", "-c", f"echo engine >> trail; exit {exit_code}"]


def test_the_scripts_run_before_and_after_the_engine(trail: Path, tmp_path: Path) -> None:
    pre = script(tmp_path / "pre.sh", "echo pre >> trail\n")
    post = script(tmp_path / "post.sh", 'echo "post $PANOPTES_EXIT_CODE" >> trail\n')
    assert main(["--pre", pre, "--post", post, *engine(0)]) == 0
    assert trail.read_text().splitlines() == ["pre", "engine", "post 0"]


def test_a_failing_pre_run_script_ends_it_before_the_engine(
    trail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pre = script(tmp_path / "pre.sh", "echo pre >> trail; exit 4\n")
    post = script(tmp_path / "post.sh", "echo post >> trail\n")
    assert main(["--pre", pre, "--post", post, *engine(0)]) == 4
    assert trail.read_text().splitlines() == ["pre"]
    assert "pre-run script failed (exit code 4)" in capsys.readouterr().err


def test_the_post_run_script_runs_after_a_failed_engine_and_its_code_wins(
    trail: Path, tmp_path: Path
) -> None:
    post = script(tmp_path / "post.sh", 'echo "post $PANOPTES_EXIT_CODE" >> trail; exit 9\n')
    assert main(["--post", post, *engine(2)]) == 2  # the engine's failure is what counts
    assert trail.read_text().splitlines() == ["engine", "post 2"]
    trail.unlink()
    assert main(["--post", post, *engine(0)]) == 9  # a failed post-run script fails the job
    assert trail.read_text().splitlines() == ["engine", "post 0"]


def test_a_stop_request_ends_the_engine_and_the_post_run_script_still_runs(
    tmp_path: Path,
) -> None:
    post = script(tmp_path / "post.sh", 'echo "post $PANOPTES_EXIT_CODE" >> trail\n')
    command = [sys.executable, "-m", "panoptes.launcher.scripts", "--post", post, "--"]
    command += ["bash", "-c", "echo started >> trail; exec sleep 60"]
    head = subprocess.Popen(
        command,
        cwd=tmp_path,
        start_new_session=True,
    )
    trail = tmp_path / "trail"
    for _ in range(200):  # bounded: 10 s at most
        if trail.exists():
            break
        time.sleep(0.05)
    os.killpg(head.pid, signal.SIGTERM)  # what the local executor's terminate does
    assert head.wait(timeout=30) == 128 + signal.SIGTERM
    assert trail.read_text().splitlines() == ["started", f"post {128 + signal.SIGTERM}"]


def test_without_an_engine_it_says_so() -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--pre", "x.sh"])
    assert stopped.value.code == 2
