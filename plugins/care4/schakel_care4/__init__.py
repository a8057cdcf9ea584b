"""Schakel plugin: Care4-style ECD (the organisation's client records)."""
