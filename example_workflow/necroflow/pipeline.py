"""A necroflow pipeline of shell rules over samples (the necroflow integration's example and
the pipeline of its tests).

``make_reference`` is called once per sample with the same arguments, so necroflow
de-duplicates it into one rule call shared by every sample's ``align``. ``align`` of the
sample named in ``config["fail_sample"]`` prints 150 lines and an error to its job.log and
exits with status 3; ``fetch_reads`` sleeps ``config["step_seconds"]`` (default 0).
Loaded by necroflow's command line as ``pipeline.py:samples_pipeline``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from necroflow import DAG, NodeType, Pipeline, command, output, workflow

FAIL_EXIT_CODE = 3
FAIL_MESSAGE = "error: the reads of this sample are corrupt"


class Reference(NodeType):
    filename = "reference.txt"


class Reads(NodeType):
    filename = "reads.txt"


class Alignment(NodeType):
    filename = "aligned.txt"


@command("echo reference-{build} > {reference}")
def make_reference(build: str):
    reference = output(Reference)
    return reference


@command("sleep {seconds}; echo reads-{sample} > {reads}")
def fetch_reads(sample: str, seconds: int):
    reads = output(Reads)
    return reads


@command(
    "if [ {exit_code} -ne 0 ]; then seq 1 150; echo '"
    + FAIL_MESSAGE
    + "' >&2; exit {exit_code}; fi; cat {reference} {reads} > {alignment}"
)
def align(reference: Reference, reads: Reads, exit_code: int):
    alignment = output(Alignment)
    return alignment


@workflow
def samples_pipeline(P: Pipeline, config: dict[str, Any]) -> None:
    for sample in config["samples"]:
        reference = make_reference(build="hg38")
        code = FAIL_EXIT_CODE if sample == config.get("fail_sample") else 0
        reads = fetch_reads(sample=sample, seconds=int(config.get("step_seconds", 0)))
        P[f"{sample}/aligned"] = align(reference, reads, exit_code=code)


def build_dag(nodes_dir: Path, samples: list[str], fail_sample: str | None = None) -> DAG:
    """The pipeline's DAG over ``samples``, every alignment requested."""
    dag = DAG(nodes_dir)
    pipeline = Pipeline(dag)
    samples_pipeline(pipeline, {"samples": samples, "fail_sample": fail_sample})
    pipeline.finish()
    dag.require(pipeline.sinks())
    return dag
