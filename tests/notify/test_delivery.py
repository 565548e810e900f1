"""Delivery: off the ingestion path, retried with back-off a bounded number of times, and once
across hub instances sharing a PostgreSQL database."""

from __future__ import annotations

import threading

import pytest

from .conftest import HOLD, WAIT, later, notifier_of
from .test_notify import failing_snakemake, rows, run_of, successful_tower


def test_a_hanging_receiver_does_not_slow_ingestion_and_is_retried(notify_app, webhook):
    app = notify_app(
        NOTIFY_URLS=webhook.url,
        NOTIFY_GRACE_SECONDS=0.0,
        NOTIFY_POLL_SECONDS=0.05,
        NOTIFY_TIMEOUT_SECONDS=HOLD,  # the receiver, not the timeout, ends the hang
    )
    client = app.test_client()
    notifier = notifier_of(app)
    webhook.hang()
    notifier.ensure_started()  # the thread a serving hub runs (TESTING does not start it)
    try:
        first = failing_snakemake(client)
        assert webhook.arrived.wait(WAIT), "the notifier never called the receiver"

        # The notifier is stuck in the receiver; ingestion answers all the same.
        others = [successful_tower(client), failing_snakemake(client)]
        assert webhook.holding >= 1  # still hanging after all of that was ingested
        assert run_of(client, others[0])["status"] == "Done"

        webhook.answer = 500
        webhook.release()
    finally:
        notifier.stop()
    [held] = [r for r in rows(app) if r.workflow_id == first]
    assert (held.status, held.attempts) == ("pending", 1)
    assert "500" in (held.last_error or "")
    assert held.sent_at is None and held.next_attempt_at is not None

    # The receiver works again: the retry (after the back-off) delivers, once per run.
    webhook.answer = 200
    notifier.run_once(later(31))
    assert {r.workflow_id: r.status for r in rows(app)} == dict.fromkeys([first, *others], "sent")
    assert len(webhook.messages) == 3
    [held] = [r for r in rows(app) if r.workflow_id == first]
    assert held.attempts == 2 and held.last_error is None


def test_the_timeout_ends_a_delivery_to_a_receiver_that_hangs(notify_app, webhook):
    app = notify_app(NOTIFY_URLS=webhook.url, NOTIFY_TIMEOUT_SECONDS=0.5)
    successful_tower(app.test_client())
    webhook.hang()
    step = notifier_of(app).run_once(later(11))
    assert webhook.holding == 1  # the step is over; the receiver still holds the request
    assert (step.sent, step.failed) == (0, 1)
    [row] = rows(app)
    assert row.status == "pending" and row.last_error
    webhook.release()


def test_a_failing_receiver_is_retried_with_back_off_then_given_up(notify_app, webhook):
    app = notify_app(NOTIFY_URLS=webhook.url, NOTIFY_RETRY_SECONDS=30.0, NOTIFY_MAX_ATTEMPTS=3)
    successful_tower(app.test_client())
    notifier = notifier_of(app)
    webhook.answer = 500

    def state():
        [row] = rows(app)
        return row.status, row.attempts

    assert notifier.run_once(later(11)).failed == 1
    assert state() == ("pending", 1)
    assert notifier.run_once(later(30)).failed == 0  # the first back-off: 30 s
    assert notifier.run_once(later(42)).failed == 1
    assert state() == ("pending", 2)
    assert notifier.run_once(later(100)).failed == 0  # the second: 60 s
    assert notifier.run_once(later(103)).failed == 1
    assert state() == ("failed", 3)  # given up
    webhook.answer = 200
    assert notifier.run_once(later(10_000)) == type(notifier.run_once())(0, 0, 0)
    assert webhook.messages == []


def test_an_unreachable_receiver_fails_fast_and_is_recorded(notify_app):
    from tests.conftest import free_port

    app = notify_app(NOTIFY_URLS=f"json://127.0.0.1:{free_port()}/nobody")
    successful_tower(app.test_client())
    step = notifier_of(app).run_once(later(11))
    assert (step.sent, step.failed) == (0, 1)
    [row] = rows(app)
    assert row.status == "pending" and row.last_error


@pytest.mark.postgresql
def test_two_hubs_on_one_postgresql_database_send_each_message_once(
    app_factory, postgres_url, webhook
):
    settings = {"SQLALCHEMY_DATABASE_URI": postgres_url, "NOTIFY_URLS": webhook.url}
    hubs = [app_factory(**settings), app_factory(**settings)]
    failed_id = failing_snakemake(hubs[0].test_client())
    done_id = successful_tower(hubs[1].test_client())
    notifiers = [notifier_of(hub) for hub in hubs]
    for moment in (later(11), later(12), later(40)):
        # Both hubs take their step at the same moment, from their own threads.
        start = threading.Barrier(len(notifiers))
        errors: list[BaseException] = []

        def step(notifier, moment=moment, start=start, errors=errors):
            try:
                start.wait(WAIT)
                notifier.run_once(moment)
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=step, args=(n,)) for n in notifiers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert errors == []
    titles = sorted(webhook.titles())
    failed = run_of(hubs[0].test_client(), failed_id)
    assert titles == sorted([f"Failed: {failed['name']}", "Done: nostalgic_pasteur"])
    assert {(r.workflow_id, r.status, r.attempts) for r in rows(hubs[0])} == {
        (failed_id, "sent", 1),
        (done_id, "sent", 1),
    }
