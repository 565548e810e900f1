"""Notifications end to end, with real receivers on loopback: what is sent, once, to whom."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from panoptes.extensions import db
from panoptes.notify import Notification
from tests.conftest import silence
from tests.replay import flask_sender, replay_http_capture, replay_tower

from .conftest import later, notifier_of


def run_of(client, workflow_id):
    return client.get(f"/api/workflow/{workflow_id}").get_json()["workflow"]


def rows(app):
    with app.app_context():
        return db.session.scalars(select(Notification).order_by(Notification.pk)).all()


def failing_snakemake(client):
    workflow_id, statuses = replay_http_capture(
        "snakemake/panoptes_failure.jsonl", flask_sender(client)
    )
    assert set(statuses) == {200}
    return workflow_id


def successful_tower(client):
    workflow_id, statuses = replay_tower("modern", flask_sender(client))
    assert set(statuses) == {200}
    return workflow_id


def test_one_message_per_run_with_its_name_status_and_failed_jobs(notify_app, webhook):
    app = notify_app(NOTIFY_URLS=webhook.url, PUBLIC_URL="https://hub.example.org/")
    client = app.test_client()
    failed_id = failing_snakemake(client)
    done_id = successful_tower(client)
    failed, done = run_of(client, failed_id), run_of(client, done_id)
    assert (failed["status"], done["status"]) == ("Error", "Done")
    notifier = notifier_of(app)

    # Within the grace period nothing is told: the runs may not have settled.
    assert notifier.run_once().queued == 0
    assert webhook.messages == []

    step = notifier.run_once(later(11))
    assert (step.queued, step.sent, step.failed) == (2, 2, 0)
    by_title = {m["title"]: m for m in webhook.messages}
    assert sorted(by_title) == sorted([f"Failed: {failed['name']}", f"Done: {done['name']}"])
    failure = by_title[f"Failed: {failed['name']}"]
    assert failure["type"] == "failure"
    assert "Status: Error" in failure["message"]
    assert "Engine: Snakemake" in failure["message"]
    assert "rule process (sample=B), job 4" in failure["message"]
    assert (
        f"Jobs: {failed['jobs_done']} done, 1 failed, {failed['jobs_total']} total"
        in (failure["message"])
    )
    assert f"https://hub.example.org/workflow/{failed_id}" in failure["message"]
    success = by_title[f"Done: {done['name']}"]
    assert success["type"] == "success" and "Engine: Nextflow" in success["message"]
    assert all(len(title) <= 64 for title in by_title)

    # Every later step, from this hub or after more events of nothing new, sends nothing.
    for seconds in (12, 60, 600):
        assert notifier.run_once(later(seconds)) == type(step)(0, 0, 0)
    assert len(webhook.messages) == 2
    assert {(r.workflow_id, r.event, r.status, r.attempts) for r in rows(app)} == {
        (failed_id, "Error", "sent", 1),
        (done_id, "Done", "sent", 1),
    }


def test_runs_the_rules_exclude_are_not_told(notify_app, webhook):
    app = notify_app(NOTIFY_URLS=webhook.url, NOTIFY_ON="Error", NOTIFY_ENGINE="nextflow")
    client = app.test_client()
    failing_snakemake(client)  # wrong engine
    successful_tower(client)  # not an event the rule wants
    replay_tower("nf-tower/workflow_failed", flask_sender(client))  # wanted
    notifier_of(app).run_once(later(11))
    assert [m["type"] for m in webhook.messages] == ["failure"]
    assert len(rows(app)) == 1


def test_name_patterns_route_runs_to_different_rules(notify_app, webhook, second_webhook, tmp_path):
    config = tmp_path / "panoptes.toml"
    config.write_text(
        f"""
[[notify.rules]]
name = "hello"
urls = ["{webhook.url}"]
on = ["Done"]
name_pattern = "nostalgic_*"

[[notify.rules]]
name = "failures"
urls = "{second_webhook.url}"
on = "error"
engine = "snakemake"
"""
    )
    app = notify_app(CONFIG=str(config))
    client = app.test_client()
    failing_snakemake(client)
    successful_tower(client)
    notifier_of(app).run_once(later(11))
    assert webhook.titles() == ["Done: nostalgic_pasteur"]
    assert [m["type"] for m in second_webhook.messages] == ["failure"]
    assert {(r.rule, r.event) for r in rows(app)} == {("hello", "Done"), ("failures", "Error")}


def test_a_flapping_run_is_told_once_when_it_settles(notify_app, webhook):
    app = notify_app(NOTIFY_URLS=webhook.url)
    client = app.test_client()
    notifier = notifier_of(app)
    workflow_id = client.get("/create_workflow").get_json()["id"]

    def send(**msg):
        response = client.post(
            "/update_workflow_status", data={"msg": json.dumps(msg), "id": workflow_id}
        )
        assert response.status_code == 200

    send(level="progress", done=0, total=2)
    send(level="job_info", jobid=1, name="align")
    send(level="job_error", jobid=1, name="align", msg="exit 1")
    assert run_of(client, workflow_id)["status"] == "Error"
    notifier.run_once()
    send(level="job_info", jobid=1, name="align")  # Snakemake retries the job
    assert run_of(client, workflow_id)["status"] == "Running"
    notifier.run_once()
    send(level="job_error", jobid=1, name="align", msg="exit 1 again")
    notifier.run_once()
    assert webhook.messages == []  # nothing while it flaps

    notifier.run_once(later(11))
    assert len(webhook.messages) == 1 and webhook.messages[0]["type"] == "failure"
    assert "exit 1 again" in webhook.messages[0]["message"]

    # Snakemake's final error arrives later (completed_at is set): the same failure, not told
    # again.
    send(level="error", msg="WorkflowError: At least one job did not complete successfully.")
    assert run_of(client, workflow_id)["completed_at"] is not None
    notifier.run_once(later(11))
    notifier.run_once(later(120))
    assert len(webhook.messages) == 1


def test_reindex_does_not_tell_again(notify_app, webhook):
    app = notify_app(NOTIFY_URLS=webhook.url)
    client = app.test_client()
    failing_snakemake(client)
    successful_tower(client)
    notifier = notifier_of(app)
    notifier.run_once(later(11))
    assert len(webhook.messages) == 2
    result = app.test_cli_runner().invoke(args=["reindex"])
    assert result.exit_code == 0, result.output
    for seconds in (11, 30):
        assert notifier.run_once(later(seconds)).queued == 0
    assert len(webhook.messages) == 2 and len(rows(app)) == 2


def test_a_run_gone_silent_is_told_once_as_stale(notify_app, webhook):
    from datetime import timedelta

    app = notify_app(NOTIFY_URLS=webhook.url, NEXTFLOW_STALE_MINUTES=10.0)
    client = app.test_client()
    workflow_id, _ = replay_tower("modern", flask_sender(client))
    client.put(f"/api/workflow/{workflow_id}", json={"name": "quiet-run"})
    # a second, running Tower run: create and begin only
    running = client.post(
        "/trace/create", json={"sessionId": "s-1", "runName": "silent-run", "instant": 1}
    ).get_json()["workflowId"]
    assert (
        client.put(
            f"/trace/{running}/begin", json={"workflow": {"runName": "silent-run"}}
        ).status_code
        == 200
    )
    silence(app, running, timedelta(minutes=11))
    notifier = notifier_of(app)
    notifier.run_once(later(11))
    stale = [m for m in webhook.messages if m["title"] == "Stale: silent-run"]
    assert len(stale) == 1 and "has sent nothing since" in stale[0]["message"]
    notifier.run_once(later(60))
    assert len([m for m in webhook.messages if m["title"].startswith("Stale:")]) == 1


def test_email_arrives_with_the_run_name_in_the_subject(notify_app, mailbox):
    app = notify_app(NOTIFY_URLS=mailbox.url)
    client = app.test_client()
    successful_tower(client)
    step = notifier_of(app).run_once(later(11))
    assert (step.sent, step.failed) == (1, 0)
    assert len(mailbox.messages) == 1
    [subject] = mailbox.subjects()
    assert "nostalgic_pasteur" in subject
    assert mailbox.messages[0]["To"].endswith("ops@example.org")


def test_the_run_page_shows_what_was_sent(notify_app, webhook):
    app = notify_app(NOTIFY_URLS=webhook.url)
    client = app.test_client()
    workflow_id = successful_tower(client)
    page = client.get(f"/workflow/{workflow_id}").get_data(as_text=True)
    assert 'id="run-notifications"' not in page
    notifier_of(app).run_once(later(11))
    page = client.get(f"/workflow/{workflow_id}").get_data(as_text=True)
    assert 'id="run-notifications"' in page
    section = page.split('id="run-notifications"', 1)[1].split("</section>", 1)[0]
    assert "delivered" in section and "JSON" in section and "default" in section
    assert webhook.url.split("//", 1)[1] not in page  # receivers' URLs are never shown


def test_a_receiver_that_is_removed_is_given_up(notify_app, webhook, second_webhook):
    app = notify_app(NOTIFY_URLS=webhook.url)
    successful_tower(app.test_client())
    notifier_of(app).queue(later(11))
    other = notify_app(NOTIFY_URLS=second_webhook.url)
    notifier_of(other).run_once(later(11))
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Notification))
    assert count == 2  # the old receiver's row and the new receiver's
    statuses = {(r.status, r.last_error) for r in rows(app)}
    assert ("failed", "this receiver is no longer configured") in statuses
    assert webhook.messages == [] and len(second_webhook.messages) == 1


def test_notifications_of_deleted_runs_are_forgotten_later(notify_app, webhook):
    app = notify_app(NOTIFY_URLS=webhook.url)
    client = app.test_client()
    kept, deleted = successful_tower(client), failing_snakemake(client)
    notifier = notifier_of(app)
    notifier.run_once(later(11))
    assert client.delete(f"/api/workflow/{deleted}").status_code == 204
    notifier.run_once(later(3600))  # not yet: within twice the look-back
    assert {r.workflow_id for r in rows(app)} == {kept, deleted}
    notifier.run_once(later(3 * 3600))
    assert {r.workflow_id for r in rows(app)} == {kept}
    assert len(webhook.messages) == 2


def test_the_launcher_can_feed_its_own_events(notify_app, webhook, monkeypatch):
    from panoptes.notify import decide
    from panoptes.notify.message import Message, kind, title

    def launches(config, events, now):
        # What the launcher's source gives: a launch that never became a run.
        yield decide.Transition(
            "launch-42", "launch_failed", "launch_failed:launch-42", "nextflow", "prod-chipseq",
            Message(title("launch_failed", "prod-chipseq"), "sbatch: error: invalid partition",
                    kind("launch_failed")),
        )  # fmt: skip

    monkeypatch.setattr(decide, "TRANSITION_SOURCES", [*decide.TRANSITION_SOURCES, launches])
    app = notify_app(NOTIFY_URLS=webhook.url, NOTIFY_ON="launch_failed,launch_lost")
    notifier = notifier_of(app)
    notifier.run_once()
    notifier.run_once(later(5))
    assert [(m["title"], m["type"]) for m in webhook.messages] == [
        ("Launch failed: prod-chipseq", "failure")
    ]
    assert "invalid partition" in webhook.messages[0]["message"]
