"""Engines of assay: usable and testable without Dagster."""
