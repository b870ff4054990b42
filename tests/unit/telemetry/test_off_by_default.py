"""Without OTEL_EXPORTER_OTLP_ENDPOINT no tracer, exporter or instrumentation is loaded; spans cost nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from geminivideo.config import Settings
from geminivideo.telemetry import tracing

PROBE = """
import sys
from geminivideo.api import create_app
import geminivideo.video.celery_app, geminivideo.ml.celery_app
from geminivideo.telemetry import tracing
create_app()
with tracing.span("ffmpeg"):
    pass
from opentelemetry import trace
# (redis-py imports opentelemetry.sdk.metrics for its own optional metrics: not a tracer, not ours)
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.instrumentation",
                                                        "opentelemetry.exporter")))
print(tracing.enabled(), type(trace.get_tracer_provider()).__name__, loaded)
"""


def test_nothing_is_set_up_without_an_endpoint() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False ProxyTracerProvider []"


def test_setup_refuses_without_an_endpoint() -> None:
    assert tracing.setup("test", Settings()) is False
    assert tracing.current_ids() == {}
