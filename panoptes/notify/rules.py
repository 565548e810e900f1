"""Who is told about what: notification rules from the settings and from ``panoptes.toml``.

A rule names its receivers (Apprise URLs), the events it wants (run statuses such as ``Error``,
``Done``, ``Stale``, ``Cancelled``, and the launcher's ``launch_failed`` / ``launch_lost``), and
optionally narrows by engine and by a glob on the run's name. ``PANOPTES_NOTIFY_URLS`` makes one
rule named ``default``; ``[notify]`` in ``panoptes.toml`` adds more:

    [notify]
    urls = ["mailto://..."]            # optional: one more rule, named "notify"
    on = ["Error", "Stale"]

    [[notify.rules]]
    name = "oncall"                    # names a rule's history: keep it when editing the rule
    urls = ["slack://...", "json://hooks.example.org/panoptes"]
    on = ["Error", "Stale"]
    engine = "nextflow"
    name_pattern = "prod-*"
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..normalize.schema import Engine, WorkflowStatus

# What a rule may ask for: the statuses a run settles in, Stale (silence past the engine's
# threshold) and the launcher's outcomes, which the launcher feeds in through
# ``decide.TRANSITION_SOURCES``.
RUN_EVENTS = (
    WorkflowStatus.ERROR.value,
    WorkflowStatus.DONE.value,
    WorkflowStatus.STALE.value,
    WorkflowStatus.CANCELLED.value,
    WorkflowStatus.NO_EXECUTION.value,
)
LAUNCH_EVENTS = ("launch_failed", "launch_lost")
EVENTS = RUN_EVENTS + LAUNCH_EVENTS
DEFAULT_ON = ("Error", "Done", "Stale")
CONFIG_FILE = "panoptes.toml"


class RuleError(ValueError):
    """A notification rule that cannot be used (an unknown event or engine, no URL)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One notification rule. ``name`` is stored with every notification it makes, so a run
    is told once per rule and receiver."""

    name: str
    urls: tuple[str, ...]
    on: frozenset[str]
    engines: frozenset[str] = frozenset()
    name_pattern: str = ""

    def wants(self, event: str, engine: str, run_name: str) -> bool:
        """Whether this rule notifies ``event`` for a run of ``engine`` named ``run_name``."""
        if event not in self.on:
            return False
        if self.engines and engine not in self.engines:
            return False
        return not self.name_pattern or fnmatch.fnmatchcase(run_name, self.name_pattern)


def _names(value: Any, what: str) -> list[str]:
    """A list of names from a comma-separated string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise RuleError(f"{what} must be a string or a list of strings, not {value!r}")
    names = []
    for item in items:
        if not isinstance(item, str):
            raise RuleError(f"{what} must hold strings, not {item!r}")
        if item.strip():
            names.append(item.strip())
    return names


# URLs are split at a comma or space only where the next URL begins: a URL may hold commas
# itself (mailto://...?to=a@example.org,b@example.org).
_NEXT_URL = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def _urls(value: Any, rule: str) -> list[str]:
    if isinstance(value, str):
        value = _NEXT_URL.split(value)
    return [url.strip().strip(",").strip() for url in _names(value, f"rule {rule!r}: urls")]


def _events(value: Any, rule: str) -> frozenset[str]:
    by_lower = {event.lower(): event for event in EVENTS}
    events = set()
    for name in _names(value, f"rule {rule!r}: on"):
        event = by_lower.get(name.lower())
        if event is None:
            raise RuleError(
                f"rule {rule!r}: unknown event {name!r} (choose from {', '.join(EVENTS)})"
            )
        events.add(event)
    return frozenset(events)


def _engines(value: Any, rule: str) -> frozenset[str]:
    engines = set()
    for name in _names(value, f"rule {rule!r}: engine"):
        try:
            engines.add(Engine(name.lower()).value)
        except ValueError:
            known = ", ".join(e.value for e in Engine)
            raise RuleError(f"rule {rule!r}: unknown engine {name!r} ({known})") from None
    return frozenset(engines)


def make_rule(
    name: str,
    urls: Any,
    on: Any = DEFAULT_ON,
    engine: Any = None,
    name_pattern: Any = None,
) -> Rule:
    """A checked rule (strings may be comma-separated lists)."""
    if not name or len(name) > 64:
        raise RuleError(f"a rule's name must have 1 to 64 characters, not {name!r}")
    if name_pattern is not None and not isinstance(name_pattern, str):
        raise RuleError(f"rule {name!r}: name_pattern must be a string")
    receivers = tuple(url for url in _urls(urls, name) if url)
    if not receivers:
        raise RuleError(f"rule {name!r} has no URL")
    events = _events(on, name)
    if not events:
        raise RuleError(f"rule {name!r} notifies nothing: give it at least one event in 'on'")
    return Rule(name, receivers, events, _engines(engine, name), name_pattern or "")


_RULE_KEYS = {"name", "urls", "on", "engine", "name_pattern"}


def _from_table(table: Mapping[str, Any], default_name: str) -> Rule:
    unknown = set(table) - _RULE_KEYS - {"rules"}
    if unknown:
        raise RuleError(
            f"[notify] rule {table.get('name', default_name)!r}: unknown key(s) "
            f"{', '.join(sorted(unknown))} (known: {', '.join(sorted(_RULE_KEYS))})"
        )
    name = table.get("name", default_name)
    if not isinstance(name, str):
        raise RuleError(f"[notify]: a rule's name must be a string, not {name!r}")
    return make_rule(
        name, table.get("urls"), table.get("on", DEFAULT_ON), table.get("engine"),
        table.get("name_pattern"),
    )  # fmt: skip


def rules_from_toml(document: Mapping[str, Any]) -> list[Rule]:
    """The rules of a parsed ``panoptes.toml`` (its ``[notify]`` table; other tables are
    other components' business)."""
    section = document.get("notify")
    if section is None:
        return []
    if not isinstance(section, dict):
        raise RuleError("[notify] must be a table")
    rules = []
    if "urls" in section:
        rules.append(_from_table(section, "notify"))
    elif set(section) - {"rules"}:
        raise RuleError("[notify] has settings but no 'urls'; rules go in [[notify.rules]]")
    tables = section.get("rules", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RuleError("[notify] rules must be an array of tables: [[notify.rules]]")
    for position, table in enumerate(tables, start=1):
        if "rules" in table:
            raise RuleError("[[notify.rules]] cannot hold rules of its own")
        rules.append(_from_table(table, f"rule{position}"))
    return rules


def config_path(config: Mapping[str, Any]) -> Path | None:
    """The ``panoptes.toml`` to read: ``PANOPTES_CONFIG``, else one in the working directory
    if there is one."""
    given = config.get("CONFIG")
    if given:
        return Path(str(given)).expanduser()
    here = Path(os.getcwd()) / CONFIG_FILE
    return here if here.is_file() else None


def load(config: Mapping[str, Any]) -> list[Rule]:
    """Every rule: ``PANOPTES_NOTIFY_URLS`` (named ``default``), then the file's.

    Raises ``RuleError`` on anything that cannot be used, so a typo stops the hub at start-up
    instead of silently notifying nobody.
    """
    rules = []
    if str(config.get("NOTIFY_URLS") or "").strip():
        rules.append(
            make_rule(
                "default",
                str(config["NOTIFY_URLS"]),
                config.get("NOTIFY_ON") or DEFAULT_ON,
                config.get("NOTIFY_ENGINE") or None,
                config.get("NOTIFY_NAME_PATTERN") or None,
            )
        )
    path = config_path(config)
    if path is not None:
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise RuleError(f"cannot read {path}: {error}") from None
        rules += rules_from_toml(document)
    _check_unique(rules)
    return rules


def _check_unique(rules: Sequence[Rule]) -> None:
    seen = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError(f"two notification rules are named {rule.name!r}")
        seen.add(rule.name)
