"""structlog configuration: JSON lines with context, and no local variables in tracebacks.

``merge_contextvars`` comes first so exchange and correlation ids bound per request or per
exchange appear on every line; the OpenTelemetry processor adds trace and span ids. structlog's
default exception renderer shows local variables — which may hold personal data — so tracebacks
are rendered without them.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from opentelemetry import trace

from gateway.core.pseudonyms import elfproef


SENSITIVE_KEYS = frozenset({
    "bsn", "name", "naam", "surname", "achternaam", "address", "adres", "phone", "telefoon", "email", "e_mail",
    "birth_date", "geboortedatum", "body", "payload", "content", "text", "tekst", "authorization", "token",
    "secret", "password",
})
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"(?<!\d)(?:\+31|0031|0)[\s-]?(?:6|[1-9]\d)[\s-]?\d{3}[\s-]?\d{2,4}(?:[\s-]?\d{1,4})?(?!\d)")
_NINE_DIGITS = re.compile(r"(?<!\d)\d{9}(?!\d)")
# What every match of the three above contains: an "@", or seven digits with at most one space or
# hyphen between them (the shortest phone number). Most values (ids, states, names of things)
# have neither, and one search tells so.
_CANDIDATE = re.compile(r"@|\d(?:[\s-]?\d){6}")


# The gateway's own ids (exchange, correlation, token): hex, so no e-mail address, and any digits
# in them are not a person's number; scrubbing one could only mangle it.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _scrub(text: str) -> str:
    # Runs for every string of every log line: the id check first, as most long values are ids.
    if (len(text) == 36 and _UUID.fullmatch(text) is not None) or _CANDIDATE.search(text) is None:
        return text
    text = _EMAIL.sub("[e-mail]", text)
    text = _NINE_DIGITS.sub(lambda m: "[bsn]" if elfproef(m.group()) else m.group(), text)
    return _PHONE.sub("[telefoon]", text)


def redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """A safety net, not the plan: the code never logs personal data, and this removes what slips
    through — values under sensitive keys, and BSNs, e-mail addresses and phone numbers anywhere."""
    for key, value in list(event.items()):
        if key.lower() in SENSITIVE_KEYS:
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = _scrub(value)
        elif isinstance(value, list | tuple):
            event[key] = [_scrub(v) if isinstance(v, str) else v for v in value]
    return event


def add_trace_ids(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def safe_frames(exc: BaseException) -> list[str]:
    """Where an error happened, without its message or local variables (either may hold
    personal data: a database error quotes the row it choked on)."""
    import traceback

    frames = [f"{frame.filename.rsplit('/site-packages/', 1)[-1]}:{frame.lineno} {frame.name}"
              for frame in traceback.extract_tb(exc.__traceback__)]
    return frames[-12:]


class SafeStdlibHandler(logging.Handler):
    """Routes standard-library logging (uvicorn, SQLAlchemy, httpx) through structlog, replacing
    any traceback by :func:`safe_frames` and dropping message arguments that are not strings."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                fields["error_type"] = type(record.exc_info[1]).__name__
                fields["frames"] = safe_frames(record.exc_info[1])
            message = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
            if record.name.startswith("uvicorn.access"):
                message = record.getMessage()
            structlog.get_logger(record.name).log(record.levelno, message, **fields)
        except Exception:  # logging must never take the gateway down
            pass


def configure(level: str = "INFO", fmt: str = "json") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        redact,
        # After the safety net: the time and the trace ids are the gateway's own, never personal data.
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    if fmt == "json":
        renderer: Any = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False)))
    else:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, SafeStdlibHandler):
            root.removeHandler(handler)
    root.addHandler(SafeStdlibHandler())
    root.setLevel(logging.WARNING)
