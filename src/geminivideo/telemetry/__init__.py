"""Telemetry: Prometheus metrics, structured logs and OpenTelemetry traces for the API, workers and beats.

- ``metrics``: every ``geminivideo_*`` series, created on first use (never at import);
- ``exporter``: a worker host's ``/metrics`` on WORKER_METRICS_PORT, counting every prefork child;
- ``scrape``: the gauges computed when scraped (queue depth, oldest message, webhook backlog, approvals);
- ``http``: the API's request metrics, ``X-Request-ID`` and its ``/metrics`` endpoint;
- ``celery_hooks``: Celery signal handlers that count tasks and carry context across the broker;
- ``logs``: LOG_FORMAT=json|text with task and request fields, and nothing personal;
- ``tracing``: OpenTelemetry, set up only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
"""
