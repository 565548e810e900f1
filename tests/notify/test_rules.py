"""Rules from settings and panoptes.toml, the message text, and ``panoptes notify test``."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from panoptes import create_app
from panoptes.models import Job, Workflow
from panoptes.notify import rules
from panoptes.notify.decide import settled_key, stale_key
from panoptes.notify.message import render, title
from tests.conftest import free_port


def test_the_environment_makes_one_rule_with_the_default_events():
    [rule] = rules.load({"NOTIFY_URLS": "json://a/x, mailto://b", "NOTIFY_ON": "Error,Done,Stale"})
    assert (rule.name, rule.urls, rule.on) == (
        "default",
        ("json://a/x", "mailto://b"),
        frozenset({"Error", "Done", "Stale"}),
    )
    assert rule.wants("Error", "nextflow", "anything")
    assert not rule.wants("Cancelled", "nextflow", "anything")
    assert rules.load({"NOTIFY_URLS": ""}) == []


def test_engine_and_name_pattern_narrow_a_rule():
    rule = rules.make_rule("r", "json://a", "error,launch_failed", "Snakemake", "prod-*")
    assert rule.on == {"Error", "launch_failed"}
    assert rule.wants("Error", "snakemake", "prod-rnaseq")
    assert not rule.wants("Error", "nextflow", "prod-rnaseq")
    assert not rule.wants("Error", "snakemake", "dev-rnaseq")


def test_panoptes_toml_holds_several_rules():
    document = tomllib.loads(
        """
[notify]
urls = ["mailto://ops"]
on = ["Error"]

[[notify.rules]]
name = "oncall"
urls = ["slack://t/a/b", "json://hooks/x"]
on = ["Error", "Stale", "launch_lost"]
engine = ["nextflow"]
name_pattern = "prod-*"

[[notify.rules]]
urls = "ntfy://topic"
"""
    )
    found = rules.rules_from_toml(document)
    assert [(r.name, r.urls) for r in found] == [
        ("notify", ("mailto://ops",)),
        ("oncall", ("slack://t/a/b", "json://hooks/x")),
        ("rule2", ("ntfy://topic",)),
    ]
    assert found[1].engines == {"nextflow"} and found[1].name_pattern == "prod-*"
    assert found[2].on == set(rules.DEFAULT_ON)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[notify]\nurls = ["json://a"]\non = ["Failed"]', "unknown event"),
        ('[[notify.rules]]\nurls = ["json://a"]\nengine = "cromwell"', "unknown engine"),
        ('[[notify.rules]]\nname = "x"', "has no URL"),
        ('[[notify.rules]]\nurls = ["json://a"]\nname_patern = "x"', "unknown key"),
        ('[notify]\non = ["Error"]', "no 'urls'"),
        ('[[notify.rules]]\nurls = ["json://a"]\non = []', "notifies nothing"),
    ],
)
def test_a_bad_rule_is_refused_with_a_reason(text, complaint):
    with pytest.raises(rules.RuleError, match=complaint):
        rules.rules_from_toml(tomllib.loads(text))


def test_a_bad_rule_stops_the_hub_at_start_up(tmp_path):
    config = tmp_path / "panoptes.toml"
    config.write_text('[[notify.rules]]\nname = "a"\nurls = "json://x"\n'
                      '[[notify.rules]]\nname = "a"\nurls = "json://y"\n')  # fmt: skip
    with pytest.raises(rules.RuleError, match="two notification rules"):
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "CONFIG": str(config)})
    with pytest.raises(rules.RuleError, match="cannot read"):
        rules.load({"CONFIG": str(tmp_path / "missing.toml")})


def test_keys_come_from_stored_state_only():
    start = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    assert settled_key("Error", start, start + timedelta(hours=1)) == (
        "Error:2026-11-22T10:00:00.123456Z"
    )
    assert settled_key("Done", None, start) == "Done:2026-11-22T10:00:00.123456Z"
    assert stale_key(start) == "Stale:2026-11-22T10:00:00.123456Z"


def test_titles_fit_a_phone():
    assert title("Error", "rnaseq") == "Failed: rnaseq"
    assert title("launch_lost", "x") == "Launch lost: x"
    long = title("Done", "a-very-long-run-name-" * 10)
    assert len(long) <= 64 and long.startswith("Done: a-very-long-run-name-")


def test_a_failure_message_tells_the_failed_jobs_and_their_log_tail():
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    run = Workflow(
        id="Run1", name="prod-rnaseq", engine="nextflow", status="Error",
        started_at=start, completed_at=start + timedelta(minutes=3, seconds=5),
        updated_at=start + timedelta(minutes=3, seconds=5), error_message="Process failed",
        engine_version="25.04.0",
    )  # fmt: skip
    job = Job(
        job_key="7", name="ALIGN", tag="sample_B", exit_code=137, error_message="Killed",
        extra={"log_tail": ["line 1", "line 2: out of memory"]},
    )  # fmt: skip
    message = render("Error", run, (4, 3, 10), [job], "https://hub/workflow/Run1")
    assert message.title == "Failed: prod-rnaseq" and message.kind == "failure"
    body = message.body
    for expected in (
        "Engine: Nextflow 25.04.0",
        "Started: 2026-11-22 10:00:00 UTC",
        "Duration: 3m 05s",
        "Jobs: 4 done, 3 failed, 10 total",
        "Error: Process failed",
        "- process ALIGN (sample_B), job 7, exit code 137",
        "  Killed",
        "    line 2: out of memory",
        "… and 2 more",
        "https://hub/workflow/Run1",
    ):
        assert expected in body, expected


def test_notify_test_reports_each_receiver(app_factory, tmp_path):
    from .conftest import Webhook

    hook = Webhook()
    try:
        dead = f"json://127.0.0.1:{free_port()}/nobody"
        app = app_factory(NOTIFY_URLS=f"{hook.url},{dead}")
        result = app.test_cli_runner().invoke(args=["notify", "test"])
        assert result.exit_code == 1
        lines = result.output.splitlines()
        assert any(
            line.startswith("default: JSON") and line.endswith("delivered") for line in lines
        )
        assert any("FAILED" in line for line in lines)
        assert "1 of 2 receiver(s) failed" in result.output
        assert hook.titles() == ["panoptes: test notification"]

        ok = app.test_cli_runner().invoke(args=["notify", "test", "--url", hook.url])
        assert ok.exit_code == 0 and "delivered" in ok.output
        assert len(hook.messages) == 2
    finally:
        hook.close()


def test_notify_test_without_receivers_says_how_to_set_them(runner):
    result = runner.invoke(args=["notify", "test"])
    assert result.exit_code == 1 and "PANOPTES_NOTIFY_URLS" in result.output


def test_a_url_apprise_does_not_understand_stops_the_hub_without_showing_it():
    with pytest.raises(rules.RuleError, match="not a URL Apprise understands") as raised:
        create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": "sqlite://",
                "NOTIFY_URLS": "nosuchservice://secret-token@host",
            }
        )
    assert "secret-token" not in str(raised.value)


def test_urls_are_split_where_the_next_url_begins():
    given = "mailto://smtp.example.org?to=a@example.org,b@example.org, json://a/x ntfy://topic,"
    [rule] = rules.load({"NOTIFY_URLS": given})
    assert rule.urls == (
        "mailto://smtp.example.org?to=a@example.org,b@example.org",
        "json://a/x",
        "ntfy://topic",
    )


def test_a_failed_jobs_log_tail_comes_from_either_engine_shape():
    from panoptes.models import Job
    from panoptes.notify.message import _failed_job

    generic = Job(job_key="a", name="align", exit_code=2, extra={"log_tail": "one\ntwo"})
    snakemake = Job(
        job_key="3",
        name="count",
        exit_code=1,
        extra={"log_tails": [{"path": "/w/logs/a.log", "text": "first"},
                             {"path": "/w/logs/b.log", "text": "boom at the end"}]},
    )  # fmt: skip
    assert "    two" in _failed_job(generic, "necroflow")
    assert _failed_job(generic, "necroflow")[0].startswith("- step align")
    lines = _failed_job(snakemake, "snakemake")
    assert lines[0].startswith("- rule count") and "    boom at the end" in lines
