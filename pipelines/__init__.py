"""Dagster definitions for govkit: thin assets, jobs and schedules over ``governance``."""
