"""The console's page machinery: templates, navigation, rendering, and how errors look.

Every console route is a :class:`ConsoleRoute`: it never appears in the OpenAPI document, answers
errors with a Dutch page instead of problem+json (a login page when the session is gone), writes
the session cookie back, and sends the headers that keep pages with personal data out of caches
and frames. Plugins build their console pages with :func:`console_router` and get all of that.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
import structlog
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from gateway.console import labels
from gateway.console.session import Forbidden, LoginRequired, clear_cookie, write_cookie
from gateway.core.problems import Problem

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
LOCAL = ZoneInfo("Europe/Amsterdam")
log = structlog.get_logger("gateway.console")

SECURITY_HEADERS = {
    # Pages hold personal data: never cached (so Back after logout shows nothing), never framed.
    "Cache-Control": "no-store",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

# What a core problem means to someone at a desk. The problem's own detail names no input, so it
# may follow as a technical note.
PROBLEM_TEXT: dict[str, tuple[str, str]] = {
    "not-found": ("Niet gevonden", "Dit bestaat niet (meer), of u mag het niet zien."),
    "state-conflict": ("Dat kan nu niet", "De toestand is intussen veranderd. Ververs de pagina en kijk opnieuw."),
    "already-exists": ("Bestaat al", "Er bestaat al iets met deze naam of code."),
    "validation-failed": ("Niet goed ingevuld", "Een of meer velden ontbreken of zijn ongeldig."),
    "forbidden": ("Geen toegang", "Dit mag uw rol niet."),
    "refused": ("Geweigerd: geen grondslag", "Er is geen geldige grondslag om dit te versturen."),
    "unavailable": ("Systeem niet bereikbaar", "Een gekoppeld systeem antwoordt nu niet. Probeer het zo opnieuw."),
    "message-invalid": ("Bericht ongeldig", "Het bericht voldoet niet aan de afspraken met de partner."),
    "no-partner": ("Geen partner gevonden", "Voor dit bericht is geen partner geregistreerd."),
}


@dataclass(frozen=True)
class NavEntry:
    """A link in the console's menu, for the roles named; ``description`` shows on the role's start page."""

    label: str
    path: str
    roles: tuple[str, ...]
    description: str = ""


class ConsoleError(Exception):
    """A page-level error with a Dutch title and message."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(title)
        self.status, self.title, self.message = status, title, message


# --- formatting (template filters) --------------------------------------------------------------------

def _as_datetime(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


def local_time(value: Any) -> str:
    moment = _as_datetime(value)
    return moment.astimezone(LOCAL).strftime("%d-%m-%Y %H:%M") if moment else "—"


def local_date(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, str) and len(value) == 10:
        return date.fromisoformat(value).strftime("%d-%m-%Y")
    moment = _as_datetime(value)
    return moment.astimezone(LOCAL).strftime("%d-%m-%Y") if moment else "—"


class ConsoleSite:
    """The templates and the menu; built once per app and kept in ``app.state.console``."""

    def __init__(self, nav: Iterable[NavEntry] = ()) -> None:
        self.nav: list[NavEntry] = list(nav)
        self._plugin_templates: dict[str, jinja2.BaseLoader] = {}
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(TEMPLATES), jinja2.PrefixLoader(self._plugin_templates)]),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(tijd=local_time, datum=local_date, staat=labels.state, uitkomst=labels.outcome,
                                grondslag=labels.basis, rol=labels.role, janee=labels.yes_no, veld=labels.field)

    def add_templates(self, name: str, directory: Path) -> None:
        """A plugin's templates, reached as ``<name>/<file>``; they may extend ``layout.html``."""
        self._plugin_templates[name] = jinja2.FileSystemLoader(directory)

    def nav_for(self, role: str) -> list[NavEntry]:
        return [entry for entry in self.nav if role in entry.roles]

    def render(self, request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        console = getattr(request.state, "console_session", None)
        nav = self.nav_for(console.role) if console else []
        path = request.url.path
        current = max((e.path for e in nav if path == e.path or path.startswith(e.path + "/")), key=len, default=None)
        page = self.env.get_template(template).render(
            me=console, nav=nav, current=current, csrf_token=console.csrf_token if console else "",
            flashes=console.pop_flashes() if console else [], **context)
        return HTMLResponse(page, status_code=status)


def site(request: Request) -> ConsoleSite:
    return request.app.state.console


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a console template in the layout, with the menu for the signed-in role."""
    return site(request).render(request, template, context, status)


def redirect(url: str) -> RedirectResponse:
    """After a form that changed something: 303, so Back and Reload do not post it again."""
    return RedirectResponse(url, status_code=303)


# --- errors --------------------------------------------------------------------------------------------

def error_page(request: Request, status: int, title: str, message: str, note: str | None = None) -> HTMLResponse:
    try:
        return render(request, "error.html", status=status, title=title, message=message, note=note)
    except Exception as exc:  # the page that reports an error must not raise one
        log.error("console_error_page_failed", error_type=type(exc).__name__)
        return HTMLResponse(f"<!doctype html><html lang='nl'><title>{html.escape(title)}</title><main><h1>"
                            f"{html.escape(title)}</h1><p>{html.escape(message)}</p></main></html>", status_code=status)


def problem_page(request: Request, problem: Problem) -> HTMLResponse:
    title, message = PROBLEM_TEXT.get(problem.slug, ("Er ging iets mis", "Het verzoek kon niet worden uitgevoerd."))
    return error_page(request, problem.http_status, title, message, problem.detail)


def login_redirect(request: Request, reason: str) -> RedirectResponse:
    target = request.url.path if request.method == "GET" else ""
    url = "/console/inloggen"
    params = []
    if target.startswith("/console/") and target != "/console/inloggen":
        params.append("terug=" + quote(target, safe="/"))
    if reason:
        params.append(f"verlopen={reason}")
    response = RedirectResponse(url + ("?" + "&".join(params) if params else ""), status_code=303)
    if reason:
        clear_cookie(response, request)
    return response


class ConsoleRoute(APIRoute):
    """A console page: Dutch error pages, the session cookie written back, safe headers."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired as exc:
                return _finish(request, login_redirect(request, exc.reason), write_session=False)
            except Forbidden as exc:
                response = error_page(request, 403, "Geen toegang", exc.message)
            except ConsoleError as exc:
                response = error_page(request, exc.status, exc.title, exc.message)
            except Problem as problem:
                response = problem_page(request, problem)
            except RequestValidationError:
                response = error_page(request, 422, "Niet goed ingevuld",
                                      "Het verzoek mist gegevens of bevat ongeldige waarden. Ga terug en probeer het opnieuw.")
            except HTTPException as exc:
                response = error_page(request, exc.status_code, "Dat lukte niet", "Het verzoek kon niet worden uitgevoerd.")
            except Exception as exc:
                from gateway.logging import safe_frames

                # Like the API's ErrorShield: where it happened, never what (either may hold personal data).
                log.error("unhandled_error", error_type=type(exc).__name__, path=request.url.path, frames=safe_frames(exc))
                response = error_page(request, 500, "Er ging iets mis",
                                      "De fout is vastgelegd, zonder inhoud. Probeer het opnieuw of meld het bij uw beheerder.")
            return _finish(request, response)

        return console_handler


def _finish(request: Request, response: Response, write_session: bool = True) -> Response:
    console = getattr(request.state, "console_session", None)
    if console is not None and write_session:
        write_cookie(response, request, console)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def console_router(**kwargs: Any) -> APIRouter:
    """An APIRouter for console pages: kept out of the OpenAPI document, with console error pages."""
    return APIRouter(route_class=ConsoleRoute, include_in_schema=False, default_response_class=HTMLResponse, **kwargs)
