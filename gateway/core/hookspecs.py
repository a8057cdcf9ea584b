"""Every hook a Schakel plugin can implement, in one place.

Plugins are packages with an entry point in the group ``gateway.plugins``; they implement these
hooks with ``@hookimpl``. Registration hooks hand the plugin a ``register`` callback (as ``llm``
does) so the hooks stay synchronous and the core validates what is registered; the async work
(delivering a message, talking to a partner) lives on the registered objects.

pluggy calls implementations last-registered-first and with keyword arguments only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from gateway.core.connectors import ConnectorType
    from gateway.core.exchange import ExchangeEvent
    from gateway.core.messages import InboundMessage, OutboundMessage, ParsedMessage
    from gateway.core.policy import BasisCheck
    from gateway.core.routing import Route
    from gateway.core.simulators import Simulator

hookspec = pluggy.HookspecMarker("gateway")
hookimpl = pluggy.HookimplMarker("gateway")


# --- registration (called once, while the app starts) -------------------------------------------


@hookspec
def register_connectors(register: Callable[["ConnectorType"], None]) -> None:
    """Register the connector types this plugin provides.

    :param register: call it once per :class:`~gateway.core.connectors.ConnectorType`; the core
        checks that its manifest id is unique and that its config schema is a pydantic model.
    """


@hookspec
def register_routes(register: Callable[["Route"], None]) -> None:
    """Register the routes this plugin's messages travel on.

    :param register: call it once per :class:`~gateway.core.routing.Route` (message type and
        source to a target connector type, with purpose, accepted legal bases, mapping and
        retry policy). A routes file named in settings may add routes or replace these.
    """


@hookspec
def register_routers(register: Callable[..., None]) -> None:
    """Register FastAPI routers: partner-facing under ``/partners/<name>``, worker-facing under
    ``/api/v1/<name>``.

    :param register: call ``register(router, prefix=...)``; the router is mounted under that
        prefix. Its endpoints declare their roles with ``gateway.api.deps.require`` and hand what
        they receive to the core pipeline (``request.app.state.gateway.pipeline``) instead of
        writing to the store.
    """


@hookspec
def register_console_pages(register: Callable[..., None]) -> None:
    """Contribute pages to the web console, with their menu entries and templates.

    :param register: call ``register(router, prefix="/console/<name>", nav=(...), templates=path)``.
        ``router`` comes from :func:`gateway.console.console_router` (kept out of the OpenAPI
        document, Dutch error pages); its pages declare their roles with
        :func:`gateway.console.console_user` and render with :func:`gateway.console.render`.
        ``nav`` is a sequence of :class:`gateway.console.NavEntry` (label, path, roles);
        ``templates`` a folder whose files are reached as ``<name>/<file>`` and may extend
        ``layout.html``. Called once while the app is built.
    """


@hookspec
def register_simulators(register: Callable[["Simulator"], None]) -> None:
    """Register a simulator of this plugin's partner, with the partners the demo seeds for it.

    :param register: call it with a :class:`~gateway.core.simulators.Simulator`; ``gateway demo``
        and ``gateway simulators`` mount its ASGI app under ``/<name>``.
    """


# --- the message pipeline (called per message) --------------------------------------------------


@hookspec(firstresult=True)
def parse_inbound(message: "InboundMessage") -> "ParsedMessage | None":
    """Parse and validate a message that arrived for a route.

    :param message: the raw body, media type, route and the authenticated source.
    :return: a :class:`~gateway.core.messages.ParsedMessage`, or ``None`` when this plugin does
        not handle ``message.route.message_type``. Raise
        :class:`~gateway.core.problems.Problem` for a message that fails validation.
        Stops at first non-None result.
    """


@hookspec(firstresult=True)
def map_outbound(message: "OutboundMessage") -> "tuple[bytes, str] | None":
    """Serialise the mapped (already minimised) fields into the body that leaves.

    :param message: the route, the partner and the fields the route's mapping produced.
    :return: ``(body, media_type)``, or ``None`` to leave it to another plugin; the core's
        default serialises JSON. Stops at first non-None result.
    """


@hookspec
def basis_still_holds(check: "BasisCheck") -> "str | None":
    """Whether the recorded evidence of a named legal ground still holds, before an attempt.

    :param check: the route, the basis name, its recorded evidence (decrypted), the client's
        pseudonym, the session of the transaction that will mark the attempt ``sending``, or of a
        replay's check (read with it, never write) and the gateway runtime. Asked before every
        attempt — the first, each retry, a replayed dead letter's — of an exchange whose basis
        carries evidence (``meldrecht``, ``vitaal_belang``, ``huisverbod``), and when such a dead
        letter is replayed (a reason refuses the replay, and it stays dead); the core itself
        re-checks consent, ``wettelijke_plicht`` holds by its route, and a dated decision the core
        finds lapsed (a ``vitaal_belang`` older than ``GATEWAY_VITAAL_BELANG_HOURS``, a
        ``decided_at`` in the future) is refused before any plugin is asked.
    :return: ``None`` when it still holds or the plugin has no say on this route; otherwise why
        it no longer does (stored and shown to administrators, so no personal data). Any plugin's
        reason refuses the exchange; no answer can allow what the core refused.
    """


# --- observation ---------------------------------------------------------------------------------


@hookspec
def exchange_event(event: "ExchangeEvent") -> None:
    """Observe a state change of an exchange, after it has been committed.

    :param event: exchange id, route, message type, partner, old and new state, reason —
        metadata only, never the body. Runs once the change has committed, where the change was
        asked for: on the event loop for the API and the delivery worker (so never block: no
        synchronous write there), in a worker thread for code that writes synchronously. Keep it
        quick, and start follow-up work through the pipeline (``submit_async`` on the loop),
        never by writing to the store directly. An exception here is logged and does not undo
        the change.
    """


HOOK_NAMES: tuple[str, ...] = (
    "register_connectors",
    "register_routes",
    "register_routers",
    "register_console_pages",
    "register_simulators",
    "parse_inbound",
    "map_outbound",
    "basis_still_holds",
    "exchange_event",
)

__all__ = ["HOOK_NAMES", "hookimpl", "hookspec", *HOOK_NAMES]


