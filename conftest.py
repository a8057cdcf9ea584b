"""The shared fixtures (tests/conftest.py) for the plugins' own tests under plugins/*/tests."""

from tests.conftest import *  # noqa: F401,F403
