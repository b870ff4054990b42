"""Terminal helpers shared by the ``geminivideo`` command and the demo: progress bars that follow a job, and a
HubSpot-signed POST. Their own module so that ``cli`` imports ``demo`` (for the ``demo`` command) without
``demo`` importing ``cli`` back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from geminivideo import client
from geminivideo.contracts import ProgressEvent

if TYPE_CHECKING:
    import httpx

TIMEOUT_S = 3600.0


def progress_bars(target: Console) -> Progress:
    """The progress display used by ``--wait`` and by the demo."""
    return Progress(
        TextColumn("[bold]{task.description:<22}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[status]:<10}"), TextColumn("[dim]{task.fields[message]}", justify="left"),
        TimeElapsedColumn(), console=target, transient=False,
    )


def follow_job(progress: Progress, task_id: str, label: str, *, timeout_s: float = TIMEOUT_S) -> ProgressEvent | None:
    """Draw one bar from the job's task_progress channel until a final status; return the last event."""
    bar = progress.add_task(label, total=100, status="queued", message="")
    last: ProgressEvent | None = None
    for event in client.wait_events(task_id, timeout_s=timeout_s):
        last = event
        progress.update(bar, completed=event.progress, status=event.status.value, message=event.message[:60])
    return last


def signed_post(url: str, body: bytes, secret: str) -> httpx.Response:
    """POST ``body`` to ``url`` with a HubSpot v3 signature (method + URI + body + timestamp)."""
    import httpx

    from geminivideo.ml.webhooks.signature import HEADER_TIMESTAMP, HEADER_V3, v3_signature

    timestamp = str(int(time.time() * 1000))
    headers = {"Content-Type": "application/json", HEADER_TIMESTAMP: timestamp,
               HEADER_V3: v3_signature(secret, "POST", url, body, timestamp)}
    return httpx.post(url, content=body, headers=headers, timeout=30)
