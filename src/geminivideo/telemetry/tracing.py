"""OpenTelemetry traces, set up only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Without the variable nothing is imported beyond this module and every helper here is a constant-time no-op.
With it, a process gets a tracer provider that exports over OTLP/HTTP (the exporter reads the standard
``OTEL_EXPORTER_*`` variables itself) and the library instrumentations: Celery (context travels in the
message headers from the sender's span to the task's), FastAPI, SQLAlchemy (per engine), the project's Redis
client and httpx (CRM and ad-platform calls). ``span()`` adds child spans for FFmpeg runs and model inference.

Tests: ``GEMINIVIDEO_TEST_SPAN_FILE`` swaps the OTLP exporter for the SDK's ``InMemorySpanExporter`` and appends
each finished span to that file as one JSON line, so a test can read the spans of processes it started.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

from geminivideo.config import Settings

TEST_SPAN_FILE_ENV = "GEMINIVIDEO_TEST_SPAN_FILE"
_STATE: dict[str, Any] = {"on": False, "pid": None}
_LOCK = threading.Lock()
P = ParamSpec("P")
R = TypeVar("R")


def enabled() -> bool:
    return bool(_STATE["on"])


def setup(service: str, settings: Settings) -> bool:
    """Install tracing in this process (once per pid: a forked child sets up its own). True when on."""
    if not settings.otel_exporter_otlp_endpoint:
        return False
    with _LOCK:
        if _STATE["on"] and _STATE["pid"] == os.getpid():
            return True
        _install_provider(service)
        _instrument_libraries()
        _STATE.update(on=True, pid=os.getpid())
    return True


def _install_provider(service: str) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    instance = f"{socket.gethostname()}:{os.getpid()}"
    resource = Resource.create({"service.name": service, "service.instance.id": instance})
    provider = TracerProvider(resource=resource)
    test_file = os.environ.get(TEST_SPAN_FILE_ENV)
    if test_file:
        _add_test_exporter(provider, test_file)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Set once per process: workers call this in each pool child (worker_process_init), never before the fork.
    trace.set_tracer_provider(provider)


def _add_test_exporter(provider: Any, path: str) -> None:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()

    class DumpToFile(SpanProcessor):
        """Moves what the in-memory exporter holds into ``path`` after each span, one JSON line each."""

        def on_end(self, span: ReadableSpan) -> None:
            with _LOCK, open(path, "a") as out:
                for finished in exporter.get_finished_spans():
                    out.write(json.dumps(span_record(finished)) + "\n")
                exporter.clear()

    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(DumpToFile())


def span_record(span: Any) -> dict[str, Any]:
    """The fields a test (or a person reading a dump) needs from a finished SDK span."""
    context, parent = span.get_span_context(), span.parent
    return {
        "name": span.name, "trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "start_ns": span.start_time, "end_ns": span.end_time, "kind": str(span.kind),
        "service": span.resource.attributes.get("service.name"), "attributes": dict(span.attributes or {}),
    }


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    for instrumentor in (CeleryInstrumentor(), HTTPXClientInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def instrument_redis_client(client: Any) -> None:
    """Redis spans for the project's own client (progress, status, locks); nothing when tracing is off.

    Only this client, not every redis-py client: kombu's broker chatter (a dozen commands per message sent) is
    already one ``apply_async`` span and one ``queue_wait`` span, and a span per command cost the webhook path
    more than everything else tracing does (bench/telemetry.py).
    """
    if not _STATE["on"]:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(client)


def instrument_engine(engine: Any) -> None:
    """SQL spans for one engine (``db.session`` calls this for each engine it makes); nothing when tracing is off.

    The SQLAlchemy instrumentor's own entry point refuses SQLAlchemy 2.1 (its declared range ends below it) and
    patches ``create_engine`` only for modules that import it later; the engine events its tracer hooks are
    unchanged in 2.1, so the tracer is attached to the engine directly.
    """
    if not _STATE["on"]:
        return
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    usage = metrics.get_meter("geminivideo.db").create_up_down_counter("db.client.connections.usage")
    EngineTracer(trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"), engine, usage)


def flush(timeout_ms: int = 5000) -> None:
    """Export what this process still holds (a pool child about to exit: max-tasks-per-child, shutdown)."""
    if not _STATE["on"]:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush(timeout_ms)


def instrument_fastapi(app: Any) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # No spans per ASGI receive/send message: two or three per request that say nothing the request span doesn't.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="metrics,health", exclude_spans=["receive", "send"])


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A child span of whatever is current (an FFmpeg run, a model call); nothing at all when tracing is off."""
    if not _STATE["on"]:
        yield
        return
    from opentelemetry import trace

    with trace.get_tracer("geminivideo").start_as_current_span(name, attributes=_clean(attributes)):
        yield


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: each call runs in a span ``name`` (FFmpeg runs, model inference); a plain call when off."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            if not _STATE["on"]:
                return function(*args, **kwargs)
            with span(name, **{"code.function": function.__qualname__, "geminivideo.what": kwargs.get("what")}):
                return function(*args, **kwargs)

        return inner

    return wrap


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """No spans inside (a scrape's broker and database reads would be a root trace every few seconds)."""
    if not _STATE["on"]:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def record_span(name: str, start_ns: int, end_ns: int, parent: Any, **attributes: Any) -> None:
    """A span that already happened (a message's wait in its queue), under the context ``parent``."""
    if not _STATE["on"]:
        return
    from opentelemetry import trace

    done = trace.get_tracer("geminivideo").start_span(
        name, context=parent, start_time=start_ns, attributes=_clean(attributes), kind=trace.SpanKind.CONSUMER)
    done.end(end_time=end_ns)


def context_from_headers(carrier: Any) -> Any:
    """The trace context a Celery message's headers carry (its ``traceparent``), for ``record_span``."""
    if not _STATE["on"]:
        return None
    from opentelemetry.instrumentation.celery import celery_getter
    from opentelemetry.propagate import extract

    return extract(carrier, getter=celery_getter)


def current_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span, for log lines; empty when off or outside a span."""
    if not _STATE["on"]:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if isinstance(v, str | bool | int | float)}
