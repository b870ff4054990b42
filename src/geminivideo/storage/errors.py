"""What the object store's failures mean for a task, as classes of the project's error tree.

Missing objects and refused access are permanent (another try gets the same answer); an unreachable
store, a 5xx or a cut connection is transient (the task retries with backoff). Messages name the URI or
the bucket and the store's error code, never a credential: botocore's own text is not passed on.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from geminivideo.errors import (
    DependencyUnavailable,
    GeminiVideoError,
    InputNotAllowed,
    MediaUnreadable,
    PermanentError,
)

_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
_MISSING_BUCKET = {"NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "Forbidden", "SignatureDoesNotMatch", "InvalidAccessKeyId", "AllAccessDisabled",
           "AccountProblem", "InvalidToken", "ExpiredToken"}
_TRANSIENT = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed",
              "PreconditionFailed", "412", "OperationAborted", "Throttling"}


class ObjectMissing(MediaUnreadable):
    """The object (or its bucket) does not exist; the message names the URI."""


class StorageAccessDenied(InputNotAllowed):
    """The store refused our credentials for this bucket; the message names the bucket."""


class InputTooLarge(PermanentError):
    """An s3:// input is larger than MAX_INPUT_BYTES (known from its HEAD, before a byte is read)."""


class StorageUnavailable(DependencyUnavailable):
    """The store did not answer, answered 5xx, or a transfer was cut: retried with backoff."""


class TransferCorrupt(DependencyUnavailable):
    """A transfer finished with the wrong length or checksum: retried from the start."""


def _root_cause(exc: BaseException) -> BaseException:
    """boto3's transfer wrappers (S3UploadFailedError, RetriesExceededError) keep the real error as a cause."""
    seen: set[int] = set()
    while id(exc) not in seen and not isinstance(exc, ClientError | BotoCoreError):
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__ or getattr(exc, "last_exception", None)
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def storage_error(exc: BaseException, *, uri: str, action: str) -> GeminiVideoError:
    """Translate a botocore/boto3 failure of ``action`` on ``uri`` (``s3://bucket/key``) into our tree."""
    bucket = uri[5:].split("/", 1)[0]
    cause = _root_cause(exc)
    if isinstance(cause, NoCredentialsError | PartialCredentialsError):
        return StorageAccessDenied(f"cannot {action} {uri}: no object-store credentials are configured "
                                   "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or their _FILE forms)")
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return _from_code(code, status, uri=uri, bucket=bucket, action=action)
    if isinstance(cause, BotoCoreError | OSError | ConnectionError):
        return StorageUnavailable(f"cannot {action} {uri}: the object store did not answer "
                                  f"({type(cause).__name__}); retrying")
    return StorageUnavailable(f"cannot {action} {uri}: transfer failed ({type(cause).__name__}); retrying")


def _from_code(code: str, status: int, *, uri: str, bucket: str, action: str) -> GeminiVideoError:
    if code in _MISSING_BUCKET:
        return ObjectMissing(f"cannot {action} {uri}: bucket {bucket!r} does not exist in the object store")
    if code in _MISSING_KEY or status == 404:
        return ObjectMissing(f"cannot {action} {uri}: no such object (check the key)")
    if code in _DENIED or status == 403:
        return StorageAccessDenied(f"cannot {action} {uri}: access to bucket {bucket!r} was denied ({code or status}); "
                                   "the workers' credentials need read/write rights on it")
    if code in _TRANSIENT or status >= 500 or status in (408, 412, 429):
        return StorageUnavailable(f"cannot {action} {uri}: the object store answered {code or status}; retrying")
    return PermanentError(f"cannot {action} {uri}: the object store refused it ({code or status})")
