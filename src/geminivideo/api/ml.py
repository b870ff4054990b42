"""Budget sampler, fatigue and approval endpoints."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
