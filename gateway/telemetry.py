"""OpenTelemetry tracing: a span per pipeline step, exported over OTLP when an endpoint is set.

Spans carry route, connector, partner id and attempt number — never bodies, client identifiers,
URLs with query strings or headers. There is no auto-instrumentation of HTTP clients or servers
for that reason: what a span holds is written by us.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from gateway import __version__
from gateway.settings import Settings

_configured = False


def configure(settings: Settings, extra: SpanProcessor | None = None) -> TracerProvider | None:
    """Install a tracer provider once per process; returns it, or None when tracing is off."""
    global _configured
    if _configured or not (settings.otel_exporter_otlp_endpoint or extra):
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name,
                                                        "service.version": __version__}))
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if extra is not None:
        provider.add_span_processor(extra)
    trace.set_tracer_provider(provider)
    _configured = True
    return provider
