"""Suggested requests written the way each engine reads them."""

from __future__ import annotations

from panoptes.engines import Suggestion, for_run

SUGGESTIONS = [
    Suggestion("align", cpus=2, memory_bytes=3.1e9, time_ms=14.2 * 60_000),
    Suggestion("it's odd", cpus=None, memory_bytes=None, time_ms=60_000),
    Suggestion("no_advice", cpus=None, memory_bytes=None, time_ms=None),
]


def test_snakemake_gets_a_profile_in_its_own_units() -> None:
    settings = for_run("snakemake").settings
    assert settings is not None
    assert settings.render(SUGGESTIONS) == (
        "set-threads:\n"
        "  align: 2\n"
        "set-resources:\n"
        "  align:\n"
        "    mem_mb: 3100\n"  # megabytes, as mem_mb is read
        "    runtime: 15\n"  # minutes, rounded up
        '  "it\'s odd":\n'
        "    runtime: 1\n"
    )


def test_nextflow_gets_a_configuration_in_its_own_units() -> None:
    settings = for_run("nextflow").settings
    assert settings is not None
    assert settings.render(SUGGESTIONS) == (
        "process {\n"
        "    withName: 'align' {\n"
        "        cpus = 2\n"
        "        memory = '2957 MB'\n"  # Nextflow's MB are 2**20 bytes
        "        time = '15m'\n"
        "    }\n"
        "    withName: 'it\\'s odd' {\n"
        "        time = '1m'\n"
        "    }\n"
        "}\n"
    )


def test_nothing_to_suggest_is_no_text_and_other_engines_have_no_format() -> None:
    settings = for_run("snakemake").settings
    assert settings is not None and settings.render(SUGGESTIONS[2:]) == ""
    assert for_run("necroflow").settings is None
