"""Wiring of assay: definitions, jobs, schedules, the `assay` command and the params model."""
