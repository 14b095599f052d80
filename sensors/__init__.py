"""Sensors that re-run what changed."""
