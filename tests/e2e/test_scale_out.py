"""Two hub processes on one PostgreSQL database serve the same state."""

import pytest
import requests

from tests.conftest import LiveHub
from tests.replay import http_sender, replay_http_capture, replay_tower

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql]


def test_an_event_ingested_through_one_instance_is_visible_through_the_other(
    tmp_path, postgres_url
):
    first = LiveHub(postgres_url, tmp_path / "first.log").start(timeout=60)
    second = LiveHub(postgres_url, tmp_path / "second.log").start(timeout=60)
    try:
        with requests.Session() as session:
            snakemake_id, _ = replay_http_capture(
                "snakemake/panoptes_success.jsonl", http_sender(first.url, session)
            )
            # one Nextflow run whose calls alternate between the instances, as behind a balancer
            nextflow_id = session.post(
                f"{first.url}/trace/create", json={"runName": "x"}, timeout=10
            ).json()["workflowId"]
            _, statuses = replay_tower(
                "nf-tower/workflow_success",
                http_sender(second.url, session),
                workflow_id=nextflow_id,
            )
            assert set(statuses) == {200}
            first.projected()
            for hub in (first, second):
                runs = {
                    w["id"]: w
                    for w in session.get(f"{hub.url}/api/workflows", timeout=10).json()["workflows"]
                }
                assert (
                    runs[snakemake_id]["status"] == "Done" and runs[snakemake_id]["jobs_done"] == 8
                )
                assert runs[nextflow_id]["status"] == "Done"
            session.post(f"{second.url}/api/workflow/{snakemake_id}/cancel", timeout=10)
            renamed = session.put(
                f"{first.url}/api/workflow/{snakemake_id}", json={"name": "shared"}, timeout=10
            )
            assert renamed.json()["workflow"]["status"] == "Cancelled"
            assert (
                session.get(f"{second.url}/api/workflow/{snakemake_id}", timeout=10).json()[
                    "workflow"
                ]["name"]
                == "shared"
            )
    finally:
        first.stop()
        second.stop()
