"""OpenTelemetry traces, set up only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Without the variable nothing is imported beyond this module and every helper here is a constant-time no-op.
With it, a process gets a tracer provider that exports over OTLP/HTTP (the exporter reads the standard
``OTEL_EXPORTER_*`` variables itself) and the library instrumentations: Celery (context travels in the
message headers from the sender's span to the task's), FastAPI, SQLAlchemy (per engine), the project's Redis
client and httpx (CRM and ad-platform calls). ``span()`` adds child spans for FFmpeg runs and model inference.

Server spans lose the caller's address and user agent before any exporter sees them (``scrub``): personal data
is not exported, as it is not logged.

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
# What the ASGI instrumentation records about the caller (old and new semantic conventions): personal data.
CALLER_ATTRIBUTES = frozenset({
    "client.address", "client.port", "net.peer.ip", "net.peer.port", "net.sock.peer.addr", "net.sock.peer.port",
    "network.peer.address", "network.peer.port", "http.client_ip", "http.user_agent", "user_agent.original",
})
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

        provider.add_span_processor(BatchSpanProcessor(scrubbing(OTLPSpanExporter())))
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

    provider.add_span_processor(SimpleSpanProcessor(scrubbing(exporter)))
    provider.add_span_processor(DumpToFile())


def scrub(span: Any) -> Any:
    """``span`` without the caller's address and user agent (only server spans have them; others pass as they are)."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanKind

    attributes = span.attributes
    if span.kind is not SpanKind.SERVER or not attributes or CALLER_ATTRIBUTES.isdisjoint(attributes):
        return span
    kept = {key: value for key, value in attributes.items() if key not in CALLER_ATTRIBUTES}
    return ReadableSpan(span.name, span.get_span_context(), span.parent, span.resource, kept, span.events,
                        span.links, span.kind, status=span.status, start_time=span.start_time,
                        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)


def scrubbing(exporter: Any) -> Any:
    """``exporter`` behind ``scrub``: what it sends holds no caller address or user agent."""
    from opentelemetry.sdk.trace.export import SpanExporter

    class Scrubbing(SpanExporter):
        def export(self, spans: Any) -> Any:
            return exporter.export([scrub(span) for span in spans])

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(exporter.force_flush(timeout_millis))

    return Scrubbing()


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

    One client span per statement, named by its operation (``INSERT``, ``SELECT`` …) with ``db.system`` and
    ``db.name``: the SQLAlchemy instrumentation's tracer also parses each statement, reads the URL and the cursor
    for attributes and exports the statement text, ~150 µs a statement, which was most of what tracing cost
    the webhook path (bench/telemetry.py). Its entry point also refuses SQLAlchemy 2.1.
    """
    if not _STATE["on"]:
        return
    from opentelemetry import trace
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from sqlalchemy import event

    tracer = trace.get_tracer("geminivideo.db")
    database = str(engine.url.database or "")
    attributes = {"db.system": str(engine.dialect.name), "db.name": database}

    def before(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if is_instrumentation_enabled():
            operation = statement[:24].split(None, 1)[0].upper() if statement.strip() else "SQL"
            context._gv_span = tracer.start_span(f"{operation} {database}", kind=SpanKind.CLIENT,
                                                 attributes=attributes)

    def after(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        done = getattr(context, "_gv_span", None)
        if done is not None:
            done.end()
            context._gv_span = None

    def failed(exception_context: Any) -> None:
        done = getattr(exception_context.execution_context, "_gv_span", None)
        if done is not None:
            done.set_status(Status(StatusCode.ERROR, type(exception_context.original_exception).__name__))
            done.end()
            exception_context.execution_context._gv_span = None

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)


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
