"""A real ``panoptes`` process on a loopback port, fed recorded traffic over HTTP."""

import pytest
import requests

from tests.replay import http_sender, replay_http_capture, replay_tower

pytestmark = pytest.mark.e2e


def test_snakemake9_snakemake732_and_nextflow_over_http(live_hub):
    session = requests.Session()
    send = http_sender(live_hub.url, session)
    snakemake9, statuses9 = replay_http_capture("snakemake/panoptes_success.jsonl", send)
    snakemake7, statuses7 = replay_http_capture("snakemake/legacy_success.jsonl", send)
    nextflow, statuses_nf = replay_tower("modern", send)
    nextflow_api, statuses_api = replay_tower(
        "nf-tower/workflow_failed", send, prefix="/api", workflow_id="ApiPrefixRun1"
    )
    assert set(statuses9 + statuses7 + statuses_nf + statuses_api) == {200}

    live_hub.projected()
    listing = session.get(f"{live_hub.url}/api/workflows", timeout=10).json()
    by_id = {w["id"]: w for w in listing["workflows"]}
    assert listing["count"] == 4
    assert by_id[snakemake9]["status"] == "Done" and by_id[snakemake9]["jobs_done"] == 8
    assert by_id[snakemake7]["status"] == "Done" and by_id[snakemake7]["jobs_total"] == 8
    assert by_id[nextflow]["status"] == "Done" and by_id[nextflow]["engine"] == "nextflow"
    assert by_id[nextflow_api]["status"] == "Error"
    jobs = session.get(f"{live_hub.url}/api/workflow/{snakemake9}/jobs", timeout=10).json()
    assert jobs["count"] == 8 and {j["status"] for j in jobs["jobs"]} == {"Done"}

    begin = session.put(f"{live_hub.url}/trace/{nextflow}/begin", json={"workflow": {}}, timeout=10)
    assert begin.json()["watchUrl"] == f"{live_hub.url}/workflow/{nextflow}"
    page = session.get(begin.json()["watchUrl"], timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]


def test_the_hub_keeps_its_data_across_a_restart(tmp_path):
    from tests.conftest import LiveHub

    hub = LiveHub(f"sqlite:///{tmp_path / 'keep.db'}", tmp_path / "hub.log").start()
    try:
        send = http_sender(hub.url, requests.Session())
        workflow_id, _ = replay_http_capture("snakemake/panoptes_failure.jsonl", send)
    finally:
        hub.stop()
    hub = LiveHub(hub.database_url, tmp_path / "hub.log").start()
    try:
        hub.projected()
        run = requests.get(f"{hub.url}/api/workflow/{workflow_id}", timeout=10).json()["workflow"]
        assert run["status"] == "Error" and run["jobs_failed"] == 1
    finally:
        hub.stop()
