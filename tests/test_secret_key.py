"""The cookie-signing key: a weak one is refused at start; none configured means one generated
on first start and kept in the database, the same for every app, process and restart."""

import pytest
from sqlalchemy import select

from panoptes import create_app
from panoptes.extensions import db
from panoptes.hubstate import SECRET_KEY, HubState
from panoptes.store import projector

TOKEN = "tok-" + "0123456789abcdef" * 3


@pytest.mark.parametrize(
    "key",
    [
        "development-only-not-secret",
        "change-me-to-a-long-random-string",  # the old .env.example value
        "please-CHANGE-this-before-production-use",
        "short-but-random-8f3a",
        "x" * 64,
        "ab" * 40,
        "your-secret-key-goes-here-0123456789",
    ],
)
def test_weak_or_placeholder_keys_are_refused_at_start(database_url, key):
    with pytest.raises(RuntimeError, match="PANOPTES_SECRET_KEY is refused"):
        create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": key})


def stored_key(app):
    with app.app_context():
        return db.session.scalar(select(HubState.value).where(HubState.name == SECRET_KEY))


def test_a_strong_configured_key_is_used_not_the_stored_one(app_factory):
    key = "9f1c2b7e4a" * 4
    app = app_factory(SECRET_KEY=key)
    assert app.secret_key == key != stored_key(app)


def sign_in(app):
    response = app.test_client().post("/signin", data={"token": TOKEN})
    assert response.status_code == 302
    return response.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]


def signed_in(app, cookie):
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client.get("/api/workflows").status_code == 200


def test_without_a_key_one_is_generated_once_and_shared(database_url):
    settings = {"SQLALCHEMY_DATABASE_URI": database_url, "TOKEN": TOKEN}  # no TESTING either
    first, second = create_app(settings), create_app(settings)
    assert first.secret_key == second.secret_key == stored_key(first)
    assert len(bytes.fromhex(first.secret_key)) == 32
    cookie = sign_in(first)
    assert signed_in(second, cookie)
    # A restart (new app, new engine) keeps it: nobody is signed out.
    dispose(first, second)
    restarted = create_app(settings)
    try:
        assert restarted.secret_key == first.secret_key and signed_in(restarted, cookie)
        assert not signed_in(restarted, cookie[:-2] + "xx")  # and it does check the signature
    finally:
        dispose(restarted)


def dispose(*apps):
    """Close the apps' connections, their projector threads first: a thread left running
    opens new ones, which are then garbage-collected open during some later test."""
    for app in apps:
        projector.for_app(app).stop()
        with app.app_context():
            db.engine.dispose()


def test_without_migrations_at_start_the_key_is_read_when_first_needed(app_factory):
    generated = stored_key(app_factory(TOKEN=TOKEN))  # migrates and generates
    later = app_factory(TOKEN=TOKEN, AUTO_MIGRATE=False)
    assert not later.secret_key  # nothing read at start (the database may not be up yet)
    cookie = sign_in(later)
    assert later.secret_key == generated and signed_in(later, cookie)


def test_an_empty_setting_means_unset(app_factory, monkeypatch):
    monkeypatch.setenv("PANOPTES_SECRET_KEY", "")  # what `PANOPTES_SECRET_KEY=` in .env gives
    app = app_factory()
    assert app.secret_key == stored_key(app)
