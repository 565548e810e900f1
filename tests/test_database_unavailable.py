"""When the database cannot take a request: ``/readyz`` says not ready (unreadable *or*
unwritable), ingestion answers 503 with Retry-After in the one error shape (never 500, which
aborts pipelines), and a pooled connection the database dropped is never handed to a request."""

import json

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from panoptes import create_app
from panoptes.extensions import db
from panoptes.hubstate import READINESS, HubState
from tests.conftest import free_port, wait_for_projection

WORKFLOW_ID = "unavailable001"  # a Nextflow run
SNAKEMAKE_ID = "unavailable002"
INGESTION = [
    ("POST", "/trace/create", {"json": {"runName": "r"}}),
    ("POST", "/api/trace/create", {"json": {"runName": "r"}}),
    ("PUT", f"/trace/{WORKFLOW_ID}/begin", {"json": {"workflow": {"id": "r"}}}),
    ("PUT", f"/trace/{WORKFLOW_ID}/progress", {"json": {"tasks": []}}),
    ("PUT", f"/trace/{WORKFLOW_ID}/heartbeat", {"json": {}}),
    ("PUT", f"/trace/{WORKFLOW_ID}/complete", {"json": {"workflow": {"success": True}}}),
    ("GET", "/create_workflow", {}),
    (
        "POST",
        "/update_workflow_status",
        {"data": {"id": SNAKEMAKE_ID, "msg": json.dumps({"level": "progress", "done": 1})}},
    ),
    (
        "POST",
        "/api/snakemake/events",
        {"json": {"workflow_id": SNAKEMAKE_ID, "events": [{"level": "progress", "done": 1}]}},
    ),
]


@pytest.fixture(params=["journal", "journal full"])
def journal_settings(request, tmp_path):
    """Where the hub keeps events the database cannot take: a journal with room, or one
    that can take nothing more."""
    settings = {"JOURNAL_DIR": str(tmp_path / "journal")}
    if request.param == "journal full":
        settings["JOURNAL_MAX_BYTES"] = 1
    return settings


@pytest.fixture
def read_only(tmp_path, journal_settings):
    """A migrated SQLite file with one run, then a hub that can only read it."""
    path = tmp_path / "hub.db"
    writable = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "PROJECTOR_THREAD": False}
    )
    assert writable.test_client().put(f"/trace/{WORKFLOW_ID}/heartbeat", json={}).status_code == 200
    wait_for_projection(writable)
    with writable.app_context():
        db.engine.dispose()
    # Tests run as root, which file permissions do not stop: SQLite's own read-only mode does.
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///file:{path}?mode=ro&uri=true",
            "AUTO_MIGRATE": False,
            "PROJECTOR_THREAD": False,
            **journal_settings,
        }
    )
    yield app
    with app.app_context():
        db.engine.dispose()


def assert_retry_later(response):
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] in ("database_unavailable", "unavailable") and body["status"] == 503
    assert body["message"]
    assert int(response.headers["Retry-After"]) > 0


def journal_of(app):
    from panoptes.store import journal

    return journal.for_app(app)


def test_readyz_writes_a_row_when_ready(client, app):
    assert client.get("/readyz").get_json() == {"status": "ready", "database": "ok"}
    with app.app_context():
        assert db.session.scalar(select(HubState.value).where(HubState.name == READINESS))


def test_readyz_is_not_ready_when_the_database_reads_but_cannot_be_written(read_only):
    client = read_only.test_client()
    assert client.get(f"/api/workflow/{WORKFLOW_ID}").status_code == 200  # reads still work
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "not_ready" and "not writable" in body["message"]
    assert "readonly" in body["message"]


def assert_kept_or_retry_later(app, response):
    """Kept in the journal (2xx: stored durably), or, when even the journal cannot take it,
    503 with Retry-After: never 500, which aborts the pipeline."""
    if app.config.get("JOURNAL_MAX_BYTES") == 1:
        assert_retry_later(response)
        assert not journal_of(app).holds_events()
    else:
        assert 200 <= response.status_code < 300, response.get_data(as_text=True)
        assert journal_of(app).holds_events()


@pytest.mark.parametrize(("method", "path", "kwargs"), INGESTION)
def test_ingestion_into_a_read_only_database_is_kept_or_asked_to_retry(
    read_only, method, path, kwargs
):
    response = read_only.test_client().open(path, method=method, **kwargs)
    assert_kept_or_retry_later(read_only, response)


@pytest.fixture
def unreachable(journal_settings):
    """A hub whose PostgreSQL port is closed (nothing listens there)."""
    url = f"postgresql+psycopg://panoptes@127.0.0.1:{free_port()}/panoptes"
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "AUTO_MIGRATE": False,
            "PROJECTOR_THREAD": False,
            **journal_settings,
        }
    )
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(("method", "path", "kwargs"), INGESTION)
def test_ingestion_by_a_hub_that_never_reached_its_database_is_asked_to_retry(
    unreachable, method, path, kwargs
):
    """It cannot know which tokens to accept, so it cannot take events even into its
    journal (tests/e2e/test_outages.py: a hub that did reach it keeps them)."""
    assert_retry_later(unreachable.test_client().open(path, method=method, **kwargs))


def test_readyz_and_reads_with_postgresql_down(unreachable):
    client = unreachable.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "unreachable" in ready.get_json()["message"]
    assert client.get("/api/workflows").status_code == 503  # a read: unavailable, not a bug


@pytest.mark.postgresql
def test_connections_the_server_dropped_are_not_handed_to_requests(app_factory, postgres_url):
    app = app_factory(SQLALCHEMY_DATABASE_URI=postgres_url)
    client = app.test_client()
    for _ in range(3):
        assert client.put(f"/trace/{WORKFLOW_ID}/heartbeat", json={}).status_code == 200
    with app.app_context():
        assert db.engine.pool.checkedin() >= 1
    # What a server restart does to every pooled connection (from a connection of its own).
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        dropped = connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert dropped >= 1
    for _ in range(5):
        assert client.put(f"/trace/{WORKFLOW_ID}/heartbeat", json={}).status_code == 200
    assert client.get("/readyz").status_code == 200
