"""The HTTP API, one router per module."""
