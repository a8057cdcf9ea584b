"""OpenTelemetry tracing: a span per pipeline step, exported over OTLP when an endpoint is set.

Spans carry route, connector, partner id and attempt number — never bodies, client identifiers,
URLs with query strings or headers. There is no auto-instrumentation of HTTP clients or servers
for that reason: what a span holds is written by us.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from gateway import __version__
from gateway.settings import Settings

_configured = False


def configure(settings: Settings, extra: SpanProcessor | None = None, metric_reader: Any = None) -> TracerProvider | None:
    """Install tracer and meter providers once per process; returns the tracer provider, or None
    when telemetry is off. ``extra`` and ``metric_reader`` let tests read what would be exported."""
    global _configured
    if _configured or not (settings.otel_exporter_otlp_endpoint or extra):
        return None
    resource = Resource.create({"service.name": settings.otel_service_name, "service.version": __version__})
    provider = TracerProvider(resource=resource)
    readers = [metric_reader] if metric_reader is not None else []
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint.rstrip("/") + "/v1/metrics")))
    if readers:
        from opentelemetry.sdk.metrics import MeterProvider

        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    if extra is not None:
        provider.add_span_processor(extra)
    trace.set_tracer_provider(provider)
    _configured = True
    return provider


class Instruments:
    """The gateway's metrics. Attributes are route, connector type, partner id, state and outcome —
    never a client, a field value or a reason text."""

    def __init__(self) -> None:
        meter = metrics.get_meter("gateway")
        self.transitions = meter.create_counter("schakel.exchange.transitions", unit="1",
                                                description="Exchange state changes, by route and new state")
        self.delivery_duration = meter.create_histogram("schakel.delivery.duration", unit="s",
                                                        description="Duration of one delivery attempt")
