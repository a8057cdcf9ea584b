"""The wmo plugin's console page, for workers: the gezinsactieplannen due and overdue.

A gezinsactieplan is due ten days after the municipality's ondersteuningsplan is signed (once the
arrangement is known). The list is :func:`schakel_wmo.api.plans_due`, the same function as
``GET /api/v1/wmo/gezinsactieplannen``, with the same roles.

Registered from ``plugin.py``::

    @hookimpl
    def register_console_pages(register):
        from schakel_wmo.console import NAV, PREFIX, TEMPLATES, router
        register(router, prefix=PREFIX, nav=NAV, templates=TEMPLATES)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from gateway.console import ConsoleError, ConsoleSession, NavEntry, console_router, console_user, render

PREFIX = "/console/wmo"
TEMPLATES = Path(__file__).with_name("templates")
NAV = (NavEntry("Gezinsactieplannen", f"{PREFIX}/gezinsactieplannen", ("hulpverlener",),
                "De gezinsactieplannen die tien dagen na ondertekening van het ondersteuningsplan klaar moeten zijn: "
                "wat bijna of te laat is."),)
# Most urgent first, as the list is read.
STATUSES = {"te_laat": "te laat", "bijna": "bijna (nog 2 dagen of minder)", "open": "open",
            "wacht_op_arrangement": "wacht op het arrangement", "onbekend": "onbekend (het ECD antwoordt niet)",
            "opgeleverd": "opgeleverd"}

router = console_router()
WorkerOrPrivacy = Annotated[ConsoleSession, Depends(console_user("hulpverlener", "privacy"))]


@router.get("/gezinsactieplannen")
async def plans(request: Request, me: WorkerOrPrivacy, status: str = "") -> Response:
    from schakel_wmo.api import plans_due

    wanted = [s for s in status.split(",") if s]
    if any(s not in STATUSES for s in wanted):
        raise ConsoleError(422, "Niet goed ingevuld", "Kies een van de mogelijkheden.")
    items = await plans_due(request.app.state.gateway)
    counts = Counter(item["status"] for item in items)
    shown = [item for item in items if not wanted or item["status"] in wanted]
    return render(request, "wmo/gezinsactieplannen.html", items=shown, counts=counts, statuses=STATUSES,
                  chosen=status, choices=[("te_laat,bijna", "te laat en bijna"), *STATUSES.items()])
