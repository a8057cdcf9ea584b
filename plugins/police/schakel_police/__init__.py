"""Schakel plugin: Police and municipality contacts."""
