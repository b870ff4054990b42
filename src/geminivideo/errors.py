"""Error tree, split by what a worker should do about it.

``TransientError`` subclasses are retried with exponential backoff and jitter; ``PermanentError``
subclasses fail the task at once (retrying a corrupt video for ten minutes helps nobody).
Every error takes a single message argument so Celery can rebuild it on the client side.
``geminivideo.api.errors`` maps the tree to HTTP status codes in one place.
"""

from __future__ import annotations


class GeminiVideoError(Exception):
    """Root of every error raised on purpose by this package."""


class ConfigError(GeminiVideoError):
    """The environment holds an invalid value; the message names the variable."""


class PermanentError(GeminiVideoError):
    """Retrying cannot help: bad input, refused path, unreadable media, impossible options."""


class InvalidPayload(PermanentError):
    """A task payload or request failed validation; the message names the field."""


class NotFound(InvalidPayload):
    """The request names a thing (job, ad, change) that does not exist; over HTTP a 404."""


class Conflict(PermanentError):
    """The request is well formed but the thing's current state forbids it (a job already finished,
    a change already decided, a portal owned by another tenant); over HTTP a 409."""


class InputNotAllowed(PermanentError):
    """An input path resolves outside MEDIA_ROOTS, or is not a regular file."""


class MediaUnreadable(PermanentError):
    """A file is missing, truncated, corrupt, not media, or lacks the needed stream."""


class UnsupportedOption(PermanentError):
    """A combination of options the system cannot produce (e.g. h264 in WebM)."""


class ModelUnavailable(PermanentError):
    """A required model (Whisper, sentence embedding) is not installed and cannot be fetched."""


class ProcessingFailed(PermanentError):
    """A tool (FFmpeg, Whisper) ran and failed for a reason that another try will not change."""


class OutOfSpace(PermanentError):
    """The output filesystem is full; retrying on this host would fail the same way."""


class Cancelled(GeminiVideoError):
    """The task was revoked or its time limit fired; outputs were removed."""


class LeaseLost(GeminiVideoError):
    """This attempt no longer holds its task's lease: a newer attempt took the task over, or the worker could
    not reach Redis for LEASE_TIMEOUT_S. It stops its work, publishes nothing and leaves the delivery to the
    attempt that holds the lease (the message is not acknowledged)."""


class TransientError(GeminiVideoError):
    """A temporary fault (network, database, broker, lock); the task retries with backoff."""


class DependencyUnavailable(TransientError):
    """A service the task needs (Redis, PostgreSQL, an HTTP API) did not answer."""


class ResourceBusy(TransientError):
    """A lock or resource is held by someone else right now."""
