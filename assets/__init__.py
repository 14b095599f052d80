"""The stages of assay, one Dagster asset module each."""
