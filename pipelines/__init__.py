"""Dagster definitions for govkit: thin assets, jobs, schedules and sensors over ``governance``."""
