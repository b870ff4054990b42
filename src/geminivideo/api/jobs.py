"""Video job submit, status, progress stream, cancel; queues and workers."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
