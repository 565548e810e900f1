"""Queues: where and how head jobs run, read from the ``[queues.NAME]`` tables of the
configuration file (``panoptes.toml``; every key is described in ``panoptes.toml.example``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EXECUTORS = ("local", "slurm")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_STRING_KEYS = (
    "work_dir",
    "snakemake",
    "nextflow",
    "slurm_partition",
    "slurm_account",
    "slurm_time",
    "slurm_mem",
)
_KNOWN_KEYS = frozenset(
    {
        "executor",
        "max_active",
        "default",
        "env",
        "allow",
        "cores",
        "slurm_cpus",
        "run_scripts",
        *_STRING_KEYS,
    }
)


@dataclass(frozen=True, slots=True)
class Queue:
    """One compute environment."""

    name: str
    executor: str = "local"
    max_active: int = 1
    default: bool = False
    work_dir: str | None = None
    snakemake: str = "snakemake"
    nextflow: str = "nextflow"
    # Snakemake's --cores for the head job (a number, or "all").
    cores: str = "all"
    env: Mapping[str, str] = field(default_factory=dict)
    # Pipelines this queue may run (exact strings); None: any.
    allow: tuple[str, ...] | None = None
    slurm_partition: str | None = None
    slurm_account: str | None = None
    slurm_time: str | None = None
    slurm_mem: str | None = None
    slurm_cpus: int | None = None
    # Whether launches may bring a pre-run and a post-run script (Seqera's preRunScript and
    # postRunScript): shell code run in the head job, so off unless the admin says so.
    run_scripts: bool = False

    def allows(self, pipeline: str) -> bool:
        """Whether the allow-list (if any) lets this pipeline run here."""
        return self.allow is None or pipeline in self.allow


def parse(tables: Mapping[str, Any]) -> dict[str, Queue]:
    """Queues from the ``queues`` table of the configuration; ValueError names a bad key."""
    queues: dict[str, Queue] = {}
    for name, table in tables.items():
        where = f"[queues.{name}]"
        if not _NAME.fullmatch(name):
            raise ValueError(f"{where}: a queue name is 1-64 characters of A-Z, a-z, 0-9, _ . -")
        if not isinstance(table, Mapping):
            raise ValueError(f"{where} must be a table")
        unknown = sorted(set(table) - _KNOWN_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
        executor = table.get("executor", "local")
        if executor not in EXECUTORS:
            raise ValueError(f"{where}: executor must be one of {', '.join(EXECUTORS)}")
        max_active = table.get("max_active", 1)
        if not isinstance(max_active, int) or isinstance(max_active, bool) or max_active < 1:
            raise ValueError(f"{where}: max_active must be a whole number of at least 1")
        strings: dict[str, str] = {}
        for key in _STRING_KEYS:
            if key in table:
                if not isinstance(table[key], str) or not table[key]:
                    raise ValueError(f"{where}: {key} must be a non-empty string")
                strings[key] = table[key]
        env = table.get("env", {})
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ValueError(f"{where}: env must be a table of strings")
        allow = table.get("allow")
        if allow is not None and (
            not isinstance(allow, list) or not all(isinstance(item, str) for item in allow)
        ):
            raise ValueError(f"{where}: allow must be a list of strings")
        cores = table.get("cores", "all")
        if not (cores == "all" or (isinstance(cores, int) and cores >= 1)):
            raise ValueError(f'{where}: cores must be "all" or a whole number of at least 1')
        cpus = table.get("slurm_cpus")
        if cpus is not None and (not isinstance(cpus, int) or cpus < 1):
            raise ValueError(f"{where}: slurm_cpus must be a whole number of at least 1")
        run_scripts = table.get("run_scripts", False)
        if not isinstance(run_scripts, bool):
            raise ValueError(f"{where}: run_scripts must be true or false")
        if run_scripts and allow is not None:
            # An allow-list promises that only the listed code runs; a script is any code.
            raise ValueError(f"{where}: a queue with an allow list cannot run scripts")
        queues[name] = Queue(
            name=name,
            executor=executor,
            max_active=max_active,
            default=bool(table.get("default", False)),
            env=dict(env),
            allow=None if allow is None else tuple(allow),
            cores=str(cores),
            slurm_cpus=cpus,
            run_scripts=run_scripts,
            **strings,
        )
    return queues


def configured(config: Mapping[str, Any]) -> dict[str, Queue]:
    """The app's queues (``QUEUES``: the parsed ``[queues]`` tables, or a mapping given to
    ``create_app``)."""
    value = config.get("QUEUES") or {}
    if all(isinstance(queue, Queue) for queue in value.values()):
        return dict(value)
    return parse(value)


def default_queue(queues: Mapping[str, Queue]) -> Queue | None:
    """The queue marked ``default = true``, else the first one; None without queues."""
    for queue in queues.values():
        if queue.default:
            return queue
    return next(iter(queues.values()), None)
