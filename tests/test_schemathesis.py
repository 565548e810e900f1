"""Property-based testing of a live hub from its own /openapi.json (schemathesis): no 5xx,
answers match the document, invalid requests are refused."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from panoptes import create_app
from panoptes.openapi import document
from tests.conftest import LiveHub

# The document of a hub with the default routes (the live hub below serves the same).
with create_app(
    {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "PROJECTOR_THREAD": False}
).app_context():
    SCHEMA = schemathesis.openapi.from_dict(document())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
EXAMPLES_PER_OPERATION = 20
# Checks that cannot hold for an operation, with the reason.
EXCLUDED_CHECKS = {
    # msg must be a string holding a JSON object, which a JSON schema cannot express: a
    # schema-valid "msg=x" is rightly refused with 400.
    "POST /update_workflow_status": [schemathesis.checks.positive_data_acceptance],
    # next is normalised before it is checked (control characters stripped), which a JSON
    # schema cannot express: a schema-valid "/\t/evil.example" is rightly refused with 400.
    "POST /signin": [schemathesis.checks.positive_data_acceptance],
    # Deleting a run that is still running is refused with 400 as Seqera does, whatever the id.
    "DELETE /seqera/workflow/{workflow_id}": [schemathesis.checks.positive_data_acceptance],
}
# Dashboard forms need the CSRF token of a browser session, which generated requests cannot have.
# Launcher routes need a token with the launch right even on an open hub, and this hub has none.
for _operation in OPERATIONS:
    if "/launches" in _operation.label or _operation.label.startswith(
        ("GET /api/queues", "GET /api/pipeline-schema")
    ):
        EXCLUDED_CHECKS[_operation.label] = [schemathesis.checks.positive_data_acceptance]
        continue
    # The Seqera launch and cancel routes need the launch right too.
    if _operation.label.startswith(("POST /workflow/", "POST /seqera/workflow/")):
        EXCLUDED_CHECKS[_operation.label] = [schemathesis.checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    live = LiveHub(f"sqlite:///{folder / 'hub.db'}", folder / "hub.log").start()
    yield live
    live.stop()


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_operation_conforms(operation, hub):
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(
            base_url=hub.url, excluded_checks=EXCLUDED_CHECKS.get(operation.label)
        )

    check()
