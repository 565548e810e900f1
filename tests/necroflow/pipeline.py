"""The example pipeline (example_workflow/necroflow/pipeline.py) for the tests, and a rule
necroflow has to try twice.

necroflow reads its rules' source, so each lives in a real file; the example is loaded from
its path, as necroflow's command line loads it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from necroflow import DAG, NodeType, Pipeline, command, output, workflow

EXAMPLE = Path(__file__).resolve().parents[2] / "example_workflow" / "necroflow" / "pipeline.py"


def _load_example() -> ModuleType:
    name = "panoptes_example_necroflow_pipeline"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_example = _load_example()
FAIL_EXIT_CODE: int = _example.FAIL_EXIT_CODE
FAIL_MESSAGE: str = _example.FAIL_MESSAGE
build_dag = _example.build_dag


class Outcome(NodeType):
    filename = "outcome.txt"


@command(
    "if [ ! -e {marker} ]; then touch {marker}; echo 'first attempt fails'; exit 5; fi; "
    "echo ok > {outcome}",
    repeat=2,
)
def flaky(marker: str):
    outcome = output(Outcome)
    return outcome


def build_flaky_dag(nodes_dir: Path, marker: Path) -> DAG:
    """One call of a rule that fails its first attempt and succeeds on the second."""

    @workflow
    def one_flaky(P: Pipeline) -> None:
        P.outcome = flaky(marker=str(marker))

    dag = DAG(nodes_dir)
    pipeline = Pipeline(dag)
    one_flaky(pipeline)
    pipeline.finish()
    dag.require(pipeline.sinks())
    return dag
