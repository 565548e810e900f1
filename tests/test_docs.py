"""The README says what the code does: every setting, every API route, the CI command."""

import re
from pathlib import Path

from panoptes.config import DEFAULTS

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented():
    gunicorn_settings = re.findall(
        r"PANOPTES_[A-Z_]+", (ROOT / "panoptes/gunicorn_conf.py").read_text()
    )
    for name in [f"PANOPTES_{key}" for key in DEFAULTS] + gunicorn_settings:
        assert f"`{name}`" in README, name


def test_every_api_route_is_documented(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and not rule.rule.startswith("/api/trace/"):
            documented = re.sub(r"<(?:[^:>]+:)?[^>]+>", "<", rule.rule)
            assert documented in re.sub(r"<[a-z_]+>", "<", README), rule.rule


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci/run").read_text()
