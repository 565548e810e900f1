"""A real single-node SLURM (Debian's slurm-wlm and munge) for the SLURM executor's tests.

``ensure_slurm()`` answers at once when a SLURM controller already answers here; otherwise,
as root and with the packages installed, it writes a one-node ``slurm.conf`` for this machine
(its CPUs and memory), makes sure munge has a key and runs, and starts ``slurmctld`` and
``slurmd``. Where that is impossible it returns the reason, and the tests are skipped with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by the panoptes test suite"
MUNGE_KEY = Path("/etc/munge/munge.key")
PARTITION = "debug"


def _run(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _answers() -> bool:
    try:
        done = _run("sinfo", "--noheader", "--format=%T", timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    states = done.stdout.split()
    return done.returncode == 0 and any(s.startswith(("idle", "mix", "alloc")) for s in states)


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 1024


def slurm_conf() -> str:
    """A one-node configuration: this machine as ``localhost``, one partition."""
    cpus = os.cpu_count() or 1
    memory = max(256, int(_memory_mb() * 0.8))
    return f"""{MARKER}
ClusterName=panoptes-test
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=300
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _munge() -> str | None:
    if _run("munge", "-n").returncode == 0:
        return None
    if not MUNGE_KEY.exists():
        if shutil.which("mungekey"):
            _run("mungekey", "--create", "--force")
        else:
            MUNGE_KEY.write_bytes(os.urandom(1024))
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
    Path("/run/munge").mkdir(exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    started = _run("runuser", "-u", "munge", "--", "munged")
    if started.returncode != 0:
        return f"munged did not start: {started.stderr.strip()}"
    return None


class Started:
    """Whether ``ensure_slurm`` started the SLURM daemons (then ``stop_slurm`` stops them)."""

    daemons = False


def stop_slurm() -> None:
    """Stop the controller and node daemons if ``ensure_slurm`` started them."""
    if Started.daemons:
        _run("scontrol", "shutdown")
        Started.daemons = False


def ensure_slurm(timeout: float = 60) -> str | None:
    """None once SLURM answers here, else why it cannot."""
    if _answers():
        return None
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "munged") if not shutil.which(b)]
    if missing:
        return (
            f"SLURM is not installed ({', '.join(missing)} missing): "
            "apt-get install slurm-wlm munge"
        )
    if os.geteuid() != 0:
        return "starting a SLURM cluster for the tests needs root"
    if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text():
        return f"{SLURM_CONF} exists and is not ours, yet SLURM does not answer"
    problem = _munge()
    if problem:
        return problem
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(slurm_conf())
    for folder in ("/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    for daemon in (["slurmctld"], ["slurmd", "-N", "localhost"]):
        started = _run(*daemon)
        if started.returncode != 0:
            return f"{daemon[0]} did not start: {started.stderr.strip()}"
        Started.daemons = True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers():
            return None
        _run("scontrol", "update", "nodename=localhost", "state=resume")
        time.sleep(1)
    log = Path("/var/log/slurm/slurmd.log")
    tail = log.read_text()[-1500:] if log.exists() else ""
    return f"SLURM started but its node never became idle:\n{tail}"
