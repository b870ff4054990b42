"""What every payload model shares: the Payload base (no NUL characters), parsing and error messages."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from geminivideo.errors import InvalidPayload


# ─── Helpers ────────────────────────────────────────────────────────────────────────────────────────
def refuse_nul(value: Any) -> Any:
    """No text field may hold NUL: PostgreSQL text cannot store it, and no path, stage or id contains one."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which no text field may hold")
    return value


class Payload(BaseModel):
    """Base of every task payload: unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    _no_nul = field_validator("*")(refuse_nul)


M = TypeVar("M", bound=BaseModel)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_payload(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``; raise InvalidPayload naming every bad field."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(f"invalid {model.__name__}: " + describe_errors(exc)) from None


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")


def _quoted(key: str) -> str:
    return repr(key).replace(";", "\\x3b").replace(":", "\\x3a")


def describe_errors(exc: ValidationError, *, prefix: str = "", root: str = "payload") -> str:
    """``where: what; …`` for each problem.

    A key that is not a plain name is quoted, with ``;`` and ``:`` escaped so the message still reads as
    ``where: what`` pairs (``'': Extra inputs…``, ``'a\\x3b b': Extra inputs…``).
    """
    problems = []
    for item in exc.errors(include_url=False):
        parts = [str(p) if isinstance(p, int) or _PLAIN_KEY.fullmatch(p) else _quoted(p) for p in item["loc"]]
        problems.append(f"{prefix + '.'.join(parts) if parts else root}: {item['msg']}")
    return "; ".join(problems)


PositiveSeconds = Annotated[float, Field(ge=0, le=36_000)]
