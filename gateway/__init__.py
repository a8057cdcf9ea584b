"""Schakel: a consent-aware integration gateway for Dutch domestic-violence care."""

__version__ = "0.1.0"
