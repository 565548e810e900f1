"""Dashboard pages through Flask's test client: what they show, filters, escaping, headers."""

from __future__ import annotations

import re
import time
from datetime import UTC, timedelta
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from sqlalchemy import update

from panoptes.extensions import db
from panoptes.models import Workflow
from tests.conftest import silence
from tests.replay import flask_sender

from .conftest import page
from .helpers import HOSTILE_NAME, HOSTILE_RUN, create_snakemake, send_event


def run_names(html: str) -> list[str]:
    """Names of the runs listed, in order."""
    return re.findall(r'<td class="name"><a href="/workflow/[^"]+">([^<]*)</a>', html)


class Inventory(HTMLParser):
    """Every tag and attribute of a page, to check what the CSP and the offline rule forbid."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


def inventory(html: str) -> Inventory:
    parser = Inventory()
    parser.feed(html)
    return parser


def test_runs_list_shows_both_engines_with_counts_and_progress(client, filled):
    html = page(client, "/")
    names = run_names(html)
    assert len(names) == 7
    assert {"rnaseq-nightly", "variant-calling", "ridiculous_montalcini"} <= set(names)
    assert html.count('class="engine engine-snakemake"') == 4
    assert html.count('class="engine engine-nextflow"') == 3
    chips = dict(re.findall(r"</i>([A-Za-z ]+) <b>(\d+)</b></a>", html))
    assert chips == {"Running": "1", "Done": "4", "Error": "2"}
    # 5 of 8 done and 1 failed for the failed Snakemake run, drawn as a stacked bar
    row = html[html.index(">variant-calling<") :].split("</tr>")[0]
    assert "5/8" in row and "1 failed" in row and 'class="seg failed"' in row
    assert "root · vm" in row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"engine": "nextflow"}, {"nostalgic_pasteur", "prickly_brenner", "ridiculous_montalcini"}),
        ({"status": "Error"}, {"variant-calling", "prickly_brenner"}),
        ({"q": "NIGHT"}, {"rnaseq-nightly"}),
        ({"q": "%"}, set()),
        ({"engine": "snakemake", "status": "Running"}, {HOSTILE_RUN}),
    ],
)
def test_runs_list_filters(client, filled, query, expected):
    html = page(client, "/?" + urlencode(query))
    assert {unescape(name) for name in run_names(html)} == expected


def test_bad_list_arguments_are_ignored_not_errors(client, filled):
    html = page(client, "/?engine=perl&status=Sleeping&page=x&sort=size&dir=up")
    assert len(run_names(html)) == 7


def test_runs_list_sorts_and_paginates(client, app):
    send = flask_sender(client)
    for i in range(53):
        create_snakemake(send, f"run-{i:02d}")
    newest_first = page(client, "/")
    assert run_names(newest_first)[:2] == ["run-52", "run-51"]
    assert "Page 1 of 2 · 53 runs" in newest_first
    assert run_names(page(client, "/?page=2")) == ["run-02", "run-01", "run-00"]
    assert run_names(page(client, "/?page=99"))[0] == "run-02"  # clamped to the last page
    by_name = run_names(page(client, "/?sort=name&dir=asc"))
    assert by_name[:3] == ["run-00", "run-01", "run-02"]
    assert run_names(page(client, "/?sort=name&dir=desc"))[0] == "run-52"
    # sort links keep the filters and flip the direction of the active column
    html = page(client, "/?sort=name&dir=asc&q=run")
    assert 'href="/?sort=name&amp;dir=desc&amp;q=run"' in html


def test_stale_runs_are_counted_and_filtered_as_read(client, app):
    send = flask_sender(client)
    silent = create_snakemake(send, "silent")
    create_snakemake(send, "busy")
    silence(app, silent, timedelta(days=30))
    html = page(client, "/")
    assert re.search(r"Stale <b>1</b>", html) and re.search(r"Running <b>1</b>", html)
    assert run_names(page(client, "/?status=Stale")) == ["silent"]
    assert "Stale · silent · panoptes" in page(client, f"/workflow/{silent}")


def test_empty_hub_explains_how_to_send_runs(client):
    html = page(client, "/")
    assert "No runs yet" in html and "-with-tower" in html


def test_snakemake_run_page_has_metadata_rules_graph_failures_jobs_timeline(client, filled):
    html = page(client, f"/workflow/{filled['snakemake_failed']}")
    assert "<title>Error · variant-calling · panoptes</title>" in html
    # metadata from workflow_started
    assert "--config fail_sample=B" in html and "Snakemake 9.27.1" in html
    assert "/home/user/project/runs/panoptes_failure_printshellcmds" in html
    # per-rule progress: make_sample 3/3, process 2 done + 1 failed
    rules = html[html.index('id="run-rules"') : html.index('class="jobs-section"')]
    assert re.search(r">make_sample</a>.*?<td class=\"num\">3</td>", rules, re.S)
    assert re.search(r">process</a>.*?failed-count\">1</td>", rules, re.S)
    # the rule graph: four rules, three links, states from the jobs
    graph = html[html.index('id="run-graph"') : html.index('class="jobs-section"')]
    assert graph.count('<g class="node') == 4 and graph.count('class="edge"') == 3
    assert 'class="node state-failed"><title>process' in graph
    assert 'class="node state-done"><title>make_sample' in graph
    assert 'class="node state-idle"><title>summarize' in graph
    # the failed-jobs panel: command, log path, link to the job
    failed = html[html.index('id="run-failed"') : html.index('id="run-rules"')]
    assert "Why it failed" in failed and "exit 3" in failed
    assert "logs/process/B.log" in failed and "/job/4" in failed
    # job table and timeline
    assert html.count('<tr>\n      <td class="mono"><a href=') == 6
    assert 'class="chart timeline"' in html and html.count('class="job s-') == 6


def test_nextflow_run_page_has_process_progress_failures_and_resource_plots(client, filled):
    html = page(client, f"/workflow/{filled['nextflow_multi']}")
    assert "Progress by process" in html and "All processes" in html
    # The run is Done: its three failed tasks were ignored, as Nextflow says, not failures.
    failed = html[html.index('id="run-failed"') : html.index('id="run-rules"')]
    assert 'class="failures" hidden' in failed and 'class="failed-job"' not in failed
    assert "<b>3</b><span>ignored</span>" in html and "<b>0</b><span>failed</span>" in html
    rules = html[html.index('id="run-rules"') : html.index('class="jobs-section"')]
    assert "+3 ignored" in rules
    # A task's heading does not repeat its process name.
    jobs = html[html.index('id="run-jobs"') :]
    assert 'stress_and_fail <span class="muted">3</span>' in jobs
    assert "stress_and_fail (3)" not in jobs
    resources = html[html.index('id="run-resources"') : html.index('id="run-meta"')]
    assert resources.count('class="box-figure"') == 5
    assert "Nextflow's own statistics" in resources
    assert "Peak memory (RSS)" in resources and "stress_200mega" in resources
    assert "pditommaso/nf-foo" in html and "master" in html


def test_resource_plots_from_job_rows_when_nextflow_sent_no_metrics(client, filled, app):
    with app.app_context():
        db.session.execute(
            update(Workflow).where(Workflow.id == filled["nextflow_multi"]).values(metrics=None)
        )
        db.session.commit()
    html = page(client, f"/workflow/{filled['nextflow_multi']}")
    resources = html[html.index('id="run-resources"') : html.index('id="run-meta"')]
    assert "over finished jobs" in resources
    # stress_2cpu: 4 tasks at about 181-197% CPU
    assert re.search(r"stress_2cpu: n=4, min 1\d\d%, median 1\d\d%, max 1\d\d%", resources)


def test_job_table_filters_sorts_and_survives_bad_arguments(client, filled):
    url = f"/workflow/{filled['nextflow_multi']}"
    ignored = page(client, url + "?status=Ignored")
    assert ignored.count('<span class="badge s-ignored">Ignored</span>') == 3
    assert "Page 1 of 1 · 3 jobs" in ignored
    one_rule = page(client, url + "?rule=stress_2cpu")
    assert "Page 1 of 1 · 4 jobs" in one_rule
    by_duration = page(client, url + "?sort=duration&dir=desc")
    keys = re.findall(r'<td class="mono"><a href="[^"]+/job/(\d+)">', by_duration)
    assert len(keys) == 15 and keys[-1] in {"6", "7", "8", "14", "15"}
    assert page(client, url + "?sort=nonsense&page=-4&status=Bogus").count("/job/") >= 15


def test_job_page_shows_everything_known(client, filled):
    html = page(client, f"/workflow/{filled['nextflow_multi']}/job/6")
    assert "<title>Ignored · stress_and_fail #6" in html
    assert "exit code 1" in html and "stress -c 1 -t 1" in html
    assert "IGNORE" in html and "nextflow/stress" in html
    assert "/home/salenda/Programs/nextflow/nf-work/1d/3d21ac9f11edbca56e0e01b9dd0932" in html
    snakemake = page(client, f"/workflow/{filled['snakemake_done']}/job/3")
    assert "data/A.txt" in snakemake and "logs/make_sample/A.log" in snakemake
    assert "sample=A" in snakemake and "Missing output files" in snakemake


def test_unknown_run_and_job_answer_an_html_404(client, filled):
    assert "no run with id nope" in page(client, "/workflow/nope", 404)
    assert "has no job 999" in page(client, f"/workflow/{filled['snakemake_done']}/job/999", 404)
    assert "no run" in page(client, "/workflow/nope/delete", 404)


def test_text_from_clients_is_escaped_everywhere(client, filled):
    for url in (
        "/",
        f"/workflow/{filled['hostile']}",
        f"/workflow/{filled['hostile']}/job/{filled['hostile_job']}",
        f"/workflow/{filled['hostile']}/delete",
    ):
        html = page(client, url)
        assert HOSTILE_NAME not in html and "<script>alert" not in html, url
        assert "&lt;img src=x onerror=alert(1)&gt;" in html or "&lt;script&gt;" in html, url
        tags = inventory(html).tags
        assert not [a for t, a in tags if t == "img" and a.get("src") == "x"], url
    run_page = page(client, f"/workflow/{filled['hostile']}")
    assert "<title>Running · &lt;script&gt;alert(&#39;run&#39;)&lt;/script&gt; &amp; co" in run_page


@pytest.mark.parametrize("role", ["", "snakemake_failed", "nextflow_multi", "hostile"])
def test_pages_have_no_inline_script_style_or_external_asset(client, filled, role):
    url = f"/workflow/{filled[role]}" if role else "/"
    response = client.get(url)
    csp = response.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
    ):
        assert directive in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    found = inventory(response.get_data(as_text=True))
    assert found.script_text.strip() == ""
    for tag, attrs in found.tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, value)
    scripts = [attrs["src"] for tag, attrs in found.tags if tag == "script"]
    assert scripts == ["/static/panoptes.js"]


def test_static_assets_are_served_by_the_hub(client):
    for name, kind in [
        ("panoptes.css", "text/css"),
        ("panoptes.js", "javascript"),
        ("favicon.svg", "svg"),
    ]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.content_type
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        body = response.get_data(as_text=True)
        assert not re.search(r"""(src|href|url)\(?=?["']?https?://""", body), name
        response.close()


def test_docs_page_keeps_the_csp(client):
    response = client.get("/docs")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_a_live_run_shows_its_running_jobs(client):
    send = flask_sender(client)
    run = create_snakemake(send, "live-one")
    send_event(
        send, run, {"level": "job_info", "jobid": 1, "name": "align", "wildcards": {"s": "1"}}
    )
    send_event(send, run, {"level": "progress", "done": 0, "total": 4})
    html = page(client, f"/workflow/{run}")
    assert "<title>Running · live-one · panoptes</title>" in html
    assert "running for" in html and '<span class="badge s-running">Running</span>' in html
    assert 'class="job s-running"' in html  # the running job's bar reaches "now"
    assert "Mark cancelled" in html


def test_sorting_follows_the_headers(client):
    """ "Started" is when the run started (a spool sent late lands where it belongs), "Job"
    is the job id as a number, and rules follow the rule graph, in the table, the timeline
    and the resource charts alike."""
    send = flask_sender(client)
    recent = create_snakemake(send, "recent")
    send_event(send, recent, {"level": "workflow_started", "timestamp": 1_900_000_000})
    late = create_snakemake(send, "sent-late")  # arrives last, started long before
    send_event(send, late, {"level": "workflow_started", "timestamp": 1_800_000_000})
    assert run_names(page(client, "/"))[:2] == ["recent", "sent-late"]
    assert run_names(page(client, "/?sort=started&dir=asc"))[-2:] == ["sent-late", "recent"]

    graph = {
        "nodes": [{"rule": "all"}, {"rule": "zeta_first"}, {"rule": "alpha_second"}],
        "links": [{"source": 1, "target": 2}, {"source": 2, "target": 0}],
    }
    send_event(send, recent, {"level": "rulegraph", "rulegraph": graph})
    for jobid, rule in ((10, "alpha_second"), (2, "zeta_first"), (1, "zeta_first"), (3, "all")):
        send_event(
            send,
            recent,
            {"level": "job_info", "jobid": jobid, "name": rule, "timestamp": 1_900_000_000 + jobid},
        )
        send_event(
            send, recent, {"level": "job_finished", "jobid": jobid, "timestamp": 1_900_000_100}
        )
    html = page(client, f"/workflow/{recent}")
    jobs = re.findall(r'<td class="mono"><a href="[^"]+/job/(\d+)">', html)
    assert jobs == ["1", "2", "3", "10"]
    assert re.findall(r'/job/(\d+)">', page(client, f"/workflow/{recent}?sort=id&dir=desc"))[
        :4
    ] == ["10", "3", "2", "1"]
    rules = html[html.index('id="run-rules"') : html.index('id="run-graph"')]
    assert re.findall(r'#jobs">(\w+)</a></td>', rules) == ["zeta_first", "alpha_second", "all"]
    timeline = html[html.index('id="run-timeline"') : html.index('id="run-resources"')]
    rows = [timeline.index(name) for name in ("zeta_first", "alpha_second", "all")]
    assert rows == sorted(rows)


def test_nextflow_requests_against_use_cpu_hours(client, filled):
    html = page(client, f"/workflow/{filled['nextflow_multi']}")
    fit = html[html.index('id="fit-run"') :]
    fit = fit[: fit.index("</table>")]
    [row] = [r for r in fit.split("<tr>") if '<td class="name">stress_2cpu</td>' in r]
    cells = [c.split("</td>")[0] for c in row.split('<td class="num">')[1:]]
    # 4 tasks asking for 2 CPUs: the fit is the mean CPUs used over those asked.
    assert cells[0] == "4" and cells[1] == "2" and cells[4] == "2"
    assert abs(int(cells[3].rstrip("%")) - 100 * float(cells[2]) / 2) < 1  # rounding
    assert 50 <= int(cells[3].rstrip("%")) <= 100
    assert 'id="cpu-hours"' in html
    # the same suggestion, written as a Nextflow configuration
    settings = unescape(html[html.index('id="fit-settings"') :].split("</pre>")[0])
    assert "withName: 'stress_2cpu' {\n        cpus = 2\n" in settings


def test_eta_from_the_pace_so_far():
    from datetime import datetime

    from panoptes import efficiency
    from panoptes.models import Workflow

    start = datetime(2026, 12, 7, 6, 0)
    run = Workflow(status="Running", started_at=start)
    now = datetime(2026, 12, 7, 6, 10)
    assert efficiency.eta_seconds(run, done=5, total=15, now=now) == 1200.0
    assert efficiency.eta_seconds(run, done=0, total=15, now=now) is None
    run.status = "Done"
    assert efficiency.eta_seconds(run, done=5, total=15, now=now) is None


def test_eta_from_each_rules_run_time_and_the_parallelism():
    from panoptes.efficiency import RulePace, estimate_left

    rules = [
        # two align jobs ran side by side for 100 s each; two wait, one runs for 60 s so far
        RulePace("align", waiting=2, running=1, finished=2, seconds=200.0, running_seconds=60.0),
        RulePace("report", waiting=1, running=0, finished=0, seconds=0.0, running_seconds=0.0),
        RulePace("plot", waiting=1, running=0, finished=0, seconds=0.0, running_seconds=0.0),
    ]
    # busy 260 s in 130 s: two at a time. Left: align 2 x 100 + (100 - 60); report 30 s (the
    # pipeline's earlier runs); plot unknown, so this run's mean job (100 s).
    assert estimate_left(rules, 130.0, {"report": 30.0}) == (200 + 40 + 30 + 100) / 2
    nothing_finished = [RulePace("align", 4, 1, 0, 0.0, 60.0)]
    assert estimate_left(nothing_finished, 130.0, {}) is None


def test_a_running_run_shows_its_eta_by_the_plan(client):
    from datetime import datetime

    from panoptes import dashboard, efficiency
    from panoptes.store import find_run

    send = flask_sender(client)
    t0 = int(time.time()) - 1000  # the page reads the clock: the run started in the past

    def job(workflow_id, jobid, rule, start, end=None):
        send_event(
            send,
            workflow_id,
            {"level": "job_info", "jobid": jobid, "name": rule, "timestamp": start},
        )
        if end is not None:
            send_event(
                send, workflow_id, {"level": "job_finished", "jobid": jobid, "timestamp": end}
            )

    earlier = create_snakemake(send, "earlier")
    send_event(
        send,
        earlier,
        {"level": "workflow_started", "snakefile": "/p/Snakefile", "timestamp": t0 - 900},
    )
    job(earlier, 1, "report", t0 - 800, t0 - 770)  # 30 s
    send_event(send, earlier, {"level": "progress", "done": 1, "total": 1})
    send_event(
        send, earlier, {"level": "workflow_finished", "success": True, "timestamp": t0 - 700}
    )

    running = create_snakemake(send, "running")
    send_event(
        send, running, {"level": "workflow_started", "snakefile": "/p/Snakefile", "timestamp": t0}
    )
    send_event(send, running, {"level": "run_info", "stats": {"align": 4, "report": 1, "total": 5}})
    job(running, 1, "align", t0, t0 + 100)
    job(running, 2, "align", t0, t0 + 100)
    with client.application.app_context():
        run = find_run(running)
        assert run is not None and run.status == "Running"
        rules = dashboard.rule_progress(run)
        now = datetime.fromtimestamp(t0 + 100, UTC)
        eta = efficiency.eta(run, rules, now)
    # two align jobs of 100 s left and the report (30 s, as before), two at a time
    assert eta is not None and eta.basis == "plan"
    assert eta.seconds == pytest.approx((2 * 100 + 30) / 2, abs=0.01)  # SQLite's julianday
    # The pace is read from the run's last SAMPLE finished jobs (a live run of a million jobs
    # is not read whole on each load): from one, the run looks one job at a time.
    with client.application.app_context(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(efficiency, "SAMPLE", 1)
        sampled = efficiency.eta(find_run(running), rules, now)
    assert sampled is not None and sampled.seconds == pytest.approx(230, abs=0.01)
    assert "left, by the plan" in page(client, f"/workflow/{running}")


def test_cpu_hours_are_exact_up_to_the_sample_and_estimated_beyond(client, monkeypatch):
    from panoptes import efficiency
    from panoptes.store import find_run

    send = flask_sender(client)
    run_id = create_snakemake(send, "cpu")
    t0 = int(time.time()) - 1000
    for jobid, seconds in ((1, 100), (2, 100), (3, 10), (4, 10), (5, 10)):
        send_event(
            send, run_id, {"level": "job_info", "jobid": jobid, "name": "a", "timestamp": t0}
        )
        send_event(
            send, run_id, {"level": "job_finished", "jobid": jobid, "timestamp": t0 + seconds}
        )
    assert "≈ " not in page(client, f"/workflow/{run_id}")
    with client.application.app_context():
        run = find_run(run_id)
        exact = efficiency.cpu_hours(run)
        monkeypatch.setattr(efficiency, "SAMPLE", 3)
        estimated = efficiency.cpu_hours(run)
    assert exact is not None and not exact.estimated
    assert exact.hours * 3600 == pytest.approx(230, abs=0.01)  # one CPU each, requested none
    # the last three jobs (10 s each) stand for all five
    assert estimated is not None and estimated.estimated
    assert estimated.hours * 3600 == pytest.approx(50, abs=0.01)
    assert "≈ 0.01" in page(client, f"/workflow/{run_id}")  # said on the page
