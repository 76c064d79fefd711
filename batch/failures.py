"""Which storage and network failures a retry may cure.

A retried pod meets a store that is back, a connection that is not reset, a throttle that has passed: those failures
exit 1, which the Job retries. A missing object, a refused permission, a file that does not parse fail the same way
on every retry: exit 2, which the Job does not retry (kustomize/components/batch-job, docs/batch.md "Exit codes").
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager

from batch.errors import BatchError, StorageUnavailable
from batch.redaction import one_line

# OS errors that say what is wrong with a path or a permission, not with the moment: a retry meets them again.
_OPERATOR_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.EINVAL,
    }
)
# pyarrow's S3 errors name the AWS SDK's error type: "AWS Error SLOW_DOWN during GetObject operation", or
# "AWS Error UNKNOWN (HTTP status 503) …" when the SDK has no name for the answer.
_ARROW_S3 = re.compile(r"AWS Error (?P<name>[A-Z_]+)(?: \(HTTP status (?P<status>\d{3})\))?")
_ARROW_S3_TRANSIENT = frozenset(
    {
        "NETWORK_CONNECTION",
        "SLOW_DOWN",
        "THROTTLING",
        "SERVICE_UNAVAILABLE",
        "INTERNAL_FAILURE",
        "REQUEST_TIMEOUT",
        "REQUEST_TIME_TOO_SKEWED",
    }
)
# pyarrow's Azure errors: "Azure Error: [SlowDown] 503 Service Unavailable"; "[] " and no status when no answer came.
_ARROW_AZURE = re.compile(r"Azure Error: \[(?P<code>[^\]]*)\] ?(?P<status>\d{3})?")


def _transient_status(status: int | None) -> bool:
    # 408 Request Timeout and 429 Too Many Requests are the store asking to come back later, like any 5xx.
    return status is not None and (status >= 500 or status in (408, 429))


def _botocore_transient(error: BaseException) -> bool | None:
    """botocore's own retry rules (connection errors, timeouts, throttling codes), plus any 5xx; None when the
    error is not botocore's."""
    if not type(error).__module__.startswith("botocore"):
        return None
    from botocore.retries.standard import RetryContext, ThrottledRetryableChecker, TransientRetryableChecker

    response = getattr(error, "response", None)
    context = RetryContext(attempt_number=1, parsed_response=response, caught_exception=error)
    if TransientRetryableChecker().is_retryable(context) or ThrottledRetryableChecker().is_retryable(context):
        return True
    status = (response or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _transient_status(status)


def _azure_transient(error: BaseException) -> bool | None:
    """azure-core's transport errors (no answer, a broken answer) and 5xx / throttling answers; None when the
    error is not azure-core's."""
    if not type(error).__module__.startswith("azure."):
        return None
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return True
    if isinstance(error, HttpResponseError):
        return _transient_status(error.status_code)
    return False


def _arrow_transient(text: str) -> bool:
    """pyarrow raises OSError for storage failures and for Parquet that does not decode alike: only its messages
    tell them apart."""
    if "curlCode" in text:
        return True
    s3 = _ARROW_S3.search(text)
    if s3:
        status = int(s3["status"]) if s3["status"] else None
        return s3["name"] in _ARROW_S3_TRANSIENT or _transient_status(status)
    azure = _ARROW_AZURE.search(text)
    if azure:
        return _transient_status(int(azure["status"])) if azure["status"] else True
    return False  # a decoding error ("Couldn't deserialize thrift", "Unexpected end of stream"): the file


def is_transient(error: BaseException) -> bool:
    """True when a retry may not meet this failure (exit 1), False when the operator must fix something (exit 2)."""
    if isinstance(
        error, ConnectionError | TimeoutError
    ):  # the builtins: refused, reset, broken pipe, timed out
        return True
    for check in (_botocore_transient, _azure_transient):
        verdict = check(error)
        if verdict is not None:
            return verdict
    if isinstance(error, OSError):
        if error.errno is not None:
            return error.errno not in _OPERATOR_ERRNOS
        return _arrow_transient(str(error))
    return False


def storage_failure(what: str, error: BaseException) -> BatchError:
    """`what: <the error's first line>` as the error of its kind: StorageUnavailable (exit 1) or BatchError (2)."""
    text = one_line(str(error))[:300] or type(error).__name__
    kind = StorageUnavailable if is_transient(error) else BatchError
    return kind(f"{what}: {text}")


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """OS errors of the block (pyarrow's storage errors are OSError) as `storage_failure(what, …)`."""
    try:
        yield
    except OSError as error:
        raise storage_failure(what, error) from None


# contract/artifact_fetch.py reports a failed download as one line from kserve-storage's child process: the
# exception's type and message (kserve-storage turns most SDK errors into RuntimeError with its own wording).
_FETCH_TRANSIENT = re.compile(
    r"EndpointConnectionError|ConnectTimeoutError|ReadTimeoutError|ConnectionClosedError"
    r"|ServiceRequestError|ServiceResponseError|Connection(Refused|Reset|Aborted)?Error"
    r"|Failed to connect to|no answer within|failed with status code (5\d\d|408|429)"
    r"|S3 error \[(5\d\d|SlowDown|InternalError|ServiceUnavailable|RequestTimeout|Throttl\w*)\]"
)


def model_fetch_is_transient(message: str) -> bool:
    return bool(_FETCH_TRANSIENT.search(message))
