"""What a head job runs: the engine's argv, its environment and its files, built from a launch.

Nothing from a request becomes part of a shell string: parameters and configuration text go
into files, every other value is one argv element of its own.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .models import Launch
from .queues import Queue

# Where a directory pipeline's Snakefile and default configuration are looked for, in order.
SNAKEFILES = ("Snakefile", "workflow/Snakefile", "snakefile", "workflow/snakefile")
SNAKEMAKE_CONFIGS = ("config.yaml", "config/config.yaml")
# Inherited variables that must not reach a pipeline: the hub's own settings and secrets.
_WITHHELD_PREFIXES = ("PANOPTES_", "SNAKEMAKE_LOGGER_PANOPTES_", "TOWER_")
LAUNCH_ID_VARIABLE = "PANOPTES_LAUNCH_ID"


@dataclass(frozen=True, slots=True)
class HeadJob:
    """A head job ready to start: argv, the variables added to the environment, where it
    runs, and the launch's own folder (files, log)."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.folder / "launch.log"


def work_dir(launch: Launch, queue: Queue) -> Path:
    """The launch's working directory: its own, else one per launch under the queue's."""
    if launch.work_dir:
        return Path(launch.work_dir).expanduser()
    base = Path(queue.work_dir).expanduser() if queue.work_dir else _default_base()
    return base / launch.id


def _default_base() -> Path:
    return Path(tempfile.gettempdir()) / "panoptes-launches"


def snakefile(pipeline: str) -> tuple[Path, Path]:
    """The Snakefile of a pipeline (a directory or a Snakefile path) and its directory."""
    path = Path(pipeline).expanduser()
    if path.is_dir():
        for name in SNAKEFILES:
            if (path / name).is_file():
                return path / name, path
        raise ValueError(f"no Snakefile in {pipeline} (looked for {', '.join(SNAKEFILES)})")
    if path.is_file():
        return path, path.parent
    raise ValueError(f"{pipeline} is neither a directory with a Snakefile nor a Snakefile")


def inherited_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment less the hub's settings and any engine token."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.startswith(_WITHHELD_PREFIXES)}


def build(launch: Launch, queue: Queue, hub_url: str, token: str) -> HeadJob:
    """The head job of a launch; writes its parameter and configuration files."""
    cwd = work_dir(launch, queue)
    folder = cwd / ".panoptes" / launch.id
    folder.mkdir(parents=True, exist_ok=True)
    env = {**queue.env, LAUNCH_ID_VARIABLE: launch.id}
    if launch.engine == "snakemake":
        argv, files = _snakemake(launch, queue, hub_url, folder, cwd)
        env["SNAKEMAKE_LOGGER_PANOPTES_TOKEN"] = token
    else:
        argv, files = _nextflow(launch, queue, hub_url, folder)
        env["TOWER_ACCESS_TOKEN"] = token
        env["TOWER_WORKFLOW_ID"] = launch.workflow_id
        env["NXF_ANSI_LOG"] = "false"
    if launch.pre_run_script or launch.post_run_script:
        argv = _with_scripts(launch, queue, folder, argv, files)
    return HeadJob(argv=argv, env=env, cwd=cwd, folder=folder, files=files)


def _with_scripts(
    launch: Launch, queue: Queue, folder: Path, engine: list[str], files: dict[str, Path]
) -> list[str]:
    """The engine's argv wrapped by ``panoptes.launcher.scripts``, which runs the launch's
    pre-run script, the engine, then its post-run script; the scripts are files."""
    if not queue.run_scripts:  # the queue's table changed since the launch was accepted
        raise ValueError(f"queue {queue.name!r} no longer runs pre-run or post-run scripts")
    argv = [sys.executable, "-m", "panoptes.launcher.scripts"]
    if launch.pre_run_script:
        files["pre_run"] = _write(folder, "pre_run.sh", launch.pre_run_script)
        argv += ["--pre", str(files["pre_run"])]
    if launch.post_run_script:
        files["post_run"] = _write(folder, "post_run.sh", launch.post_run_script)
        argv += ["--post", str(files["post_run"])]
    return [*argv, "--", *engine]


def _write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    # Parameters may hold secrets of the pipeline's own: readable by the owner only.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
    return path


def _snakemake(
    launch: Launch, queue: Queue, hub_url: str, folder: Path, cwd: Path
) -> tuple[list[str], dict[str, Path]]:
    path, directory = snakefile(launch.pipeline)
    files: dict[str, Path] = {}
    configfiles: list[str] = []
    for name in SNAKEMAKE_CONFIGS:
        # The Snakefile's own `configfile:` is read relative to the working directory, which
        # is the launch's: hand the pipeline's default configuration over explicitly.
        if (directory / name).is_file():
            configfiles.append(str(directory / name))
            break
    if launch.config_text:
        files["config"] = _write(folder, "config.yaml", launch.config_text)
        configfiles.append(str(files["config"]))
    if launch.params:
        files["params"] = _write(folder, "params.json", json.dumps(launch.params, indent=2))
        configfiles.append(str(files["params"]))
    argv = [
        queue.snakemake,
        "--snakefile", str(path),
        "--directory", str(cwd),
        "--cores", queue.cores,
        "--logger", "panoptes",
        "--logger-panoptes-address", hub_url,
        "--logger-panoptes-assigned-id", launch.workflow_id,
    ]  # fmt: skip
    if launch.run_name:
        argv += ["--logger-panoptes-name", launch.run_name]
    if configfiles:
        argv += ["--configfile", *configfiles]
    if launch.profile:
        argv += ["--profile", launch.profile]
    if launch.resume:
        argv.append("--rerun-incomplete")
    argv += [str(arg) for arg in launch.args or ()]
    return argv, files


def _nextflow(
    launch: Launch, queue: Queue, hub_url: str, folder: Path
) -> tuple[list[str], dict[str, Path]]:
    files: dict[str, Path] = {}
    argv = [queue.nextflow, "run", launch.pipeline, "-with-tower", hub_url]
    if launch.revision:
        argv += ["-r", launch.revision]
    if launch.profile:
        argv += ["-profile", launch.profile]
    if launch.run_name:
        argv += ["-name", launch.run_name]
    if launch.params:
        files["params"] = _write(folder, "params.json", json.dumps(launch.params, indent=2))
        argv += ["-params-file", str(files["params"])]
    if launch.config_text:
        files["config"] = _write(folder, "launch.config", launch.config_text)
        argv += ["-c", str(files["config"])]
    if launch.resume:
        argv.append("-resume")
    argv += [str(arg) for arg in launch.args or ()]
    return argv, files
