"""The exact head job built for each engine: argv, environment, files (no shell anywhere)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from panoptes.launcher import argv
from panoptes.launcher.executors import sbatch_script
from panoptes.launcher.models import Launch
from panoptes.launcher.queues import Queue
from tests.launcher.helpers import SNAKEMAKE_EXAMPLE

HUB = "http://hub.example:5000"


def launch(**fields: object) -> Launch:
    values: dict[str, object] = {
        "id": "Ltest000000001",
        "engine": "snakemake",
        "pipeline": str(SNAKEMAKE_EXAMPLE),
        "workflow_id": "W1234567890abc",
        "args": [],
        "resume": False,
    }
    values.update(fields)
    return Launch(**values)


def test_snakemake_argv_environment_and_files(tmp_path: Path) -> None:
    queue = Queue(name="local", snakemake="/opt/bin/snakemake", cores="4", env={"A": "b"})
    job = argv.build(
        launch(
            params={"fail_sample": "B; rm -rf /"},
            config_text="samples: [A]\n",
            profile="slurm",
            run_name="my run",
            resume=True,
            work_dir=str(tmp_path / "w"),
            args=["--keep-going"],
        ),
        queue,
        HUB,
        "pnl_secret",
    )
    folder = tmp_path / "w" / ".panoptes" / "Ltest000000001"
    assert job.argv == [
        "/opt/bin/snakemake",
        "--snakefile", str(SNAKEMAKE_EXAMPLE / "Snakefile"),
        "--directory", str(tmp_path / "w"),
        "--cores", "4",
        "--logger", "panoptes",
        "--logger-panoptes-address", HUB,
        "--logger-panoptes-assigned-id", "W1234567890abc",
        "--logger-panoptes-name", "my run",
        "--configfile", str(SNAKEMAKE_EXAMPLE / "config.yaml"),
        str(folder / "config.yaml"), str(folder / "params.json"),
        "--profile", "slurm",
        "--rerun-incomplete",
        "--keep-going",
    ]  # fmt: skip
    assert job.env == {
        "A": "b",
        "PANOPTES_LAUNCH_ID": "Ltest000000001",
        "SNAKEMAKE_LOGGER_PANOPTES_TOKEN": "pnl_secret",
    }
    assert json.loads((folder / "params.json").read_text()) == {"fail_sample": "B; rm -rf /"}
    assert (folder / "config.yaml").read_text() == "samples: [A]\n"
    assert stat.S_IMODE((folder / "params.json").stat().st_mode) == 0o600
    assert job.log_path == folder / "launch.log"


def test_nextflow_argv_and_environment(tmp_path: Path) -> None:
    queue = Queue(name="q", nextflow="nextflow", work_dir=str(tmp_path))
    job = argv.build(
        launch(engine="nextflow", pipeline="nf-core/rnaseq", revision="3.14", resume=True),
        queue,
        HUB,
        "pnl_secret",
    )
    assert job.cwd == tmp_path / "Ltest000000001"
    assert job.argv == [
        "nextflow", "run", "nf-core/rnaseq", "-with-tower", HUB, "-r", "3.14", "-resume",
    ]  # fmt: skip
    assert job.env["TOWER_WORKFLOW_ID"] == "W1234567890abc"
    assert job.env["TOWER_ACCESS_TOKEN"] == "pnl_secret"


def test_the_hub_secrets_never_reach_a_pipeline() -> None:
    kept = argv.inherited_environment(
        {"PATH": "/bin", "PANOPTES_TOKEN": "x", "TOWER_ACCESS_TOKEN": "y", "HOME": "/root"}
    )
    assert kept == {"PATH": "/bin", "HOME": "/root"}


def test_sbatch_script_quotes_every_argument(tmp_path: Path) -> None:
    queue = Queue(name="hpc", executor="slurm", slurm_partition="short", slurm_mem="4G")
    job = argv.HeadJob(
        argv=["nextflow", "run", "x; touch /pwned", "-name", "$(id)"],
        env={"TOWER_ACCESS_TOKEN": "a'b"},
        cwd=tmp_path,
        folder=tmp_path / "f",
    )
    script = sbatch_script(job, queue, "L1")
    assert "#SBATCH --partition=short" in script and "#SBATCH --mem=4G" in script
    assert "nextflow run 'x; touch /pwned' -name '$(id)' &" in script
    assert "export TOWER_ACCESS_TOKEN='a'\"'\"'b'" in script


def test_scripts_are_files_run_around_the_engine_argv(tmp_path: Path) -> None:
    queue = Queue(name="q", nextflow="nextflow", work_dir=str(tmp_path), run_scripts=True)
    pre, post = "echo 'pre'; touch \"$(id)\"\n", "rsync -a results/ /out/\n"
    job = argv.build(
        launch(engine="nextflow", pipeline="hello", pre_run_script=pre, post_run_script=post),
        queue,
        HUB,
        "pnl_secret",
    )
    folder = job.folder
    assert job.argv == [
        sys.executable, "-m", "panoptes.launcher.scripts",
        "--pre", str(folder / "pre_run.sh"), "--post", str(folder / "post_run.sh"),
        "--", "nextflow", "run", "hello", "-with-tower", HUB,
    ]  # fmt: skip
    assert (folder / "pre_run.sh").read_text() == pre
    assert (folder / "post_run.sh").read_text() == post
    assert stat.S_IMODE((folder / "pre_run.sh").stat().st_mode) == 0o600
    # A queue whose table no longer allows scripts refuses to start such a launch.
    with pytest.raises(ValueError, match="no longer runs"):
        argv.build(
            launch(engine="nextflow", pipeline="hello", pre_run_script=pre),
            Queue(name="q", work_dir=str(tmp_path)),
            HUB,
            "pnl_secret",
        )
