"""A plugin with a typo in a hook name: startup must refuse it by name."""

from gateway.core.hookspecs import hookimpl


@hookimpl
def register_conectors(register):  # sic
    pass
