"""Tests of the Snakemake logger plugin (snakemake_logger_plugin/)."""
