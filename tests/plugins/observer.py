"""A plugin that records the exchange events it observes."""

from gateway.core.hookspecs import hookimpl

SEEN: list = []


@hookimpl
def exchange_event(event):
    SEEN.append(event)
