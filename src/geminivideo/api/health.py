"""Liveness and dependency checks (/health)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
