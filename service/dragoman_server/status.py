"""The one place domain errors become gRPC statuses (AIP-193, the standard error model).

Every error status carries `google.rpc.ErrorInfo` (the error's stable `reason`, domain
`dragoman.v1`, and its metadata); INVALID_ARGUMENT (and any error with field violations) carries
`google.rpc.BadRequest`; an error with a retry delay carries `google.rpc.RetryInfo` and a
`retry-after` trailer (whole seconds); quota errors carry `google.rpc.QuotaFailure`. The details
travel as `grpc-status-details-bin` (via grpcio-status), so any gRPC client can read them.
"""

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from .errors import ERROR_DOMAIN, DragomanServerError, FieldViolation, Internal, InvalidArgument


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def status_of(error: DragomanServerError) -> status_pb2.Status:
    """The `google.rpc.Status` (code, message and details) of a domain error."""
    status = status_pb2.Status(code=getattr(code_pb2, error.status), message=error.message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason=error.reason,
            domain=ERROR_DOMAIN,
            metadata={str(k): str(v) for k, v in error.metadata.items()},
        )
    )
    violations = error.violations
    if not violations and error.status == "INVALID_ARGUMENT":
        violations = (FieldViolation("", error.message),)  # "": the request as a whole
    if violations:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description, reason=error.reason
                    )
                    for v in violations
                ]
            )
        )
    if error.quota_violations:
        status.details.add().Pack(
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=v.subject, description=v.description
                    )
                    for v in error.quota_violations
                ]
            )
        )
    if error.retry_after_s is not None:
        status.details.add().Pack(
            error_details_pb2.RetryInfo(retry_delay=_duration(error.retry_after_s))
        )
    return status


def grpc_status_of(error: DragomanServerError) -> grpc.Status:
    """The status as grpc sends it: code, details string and trailing metadata."""
    converted = rpc_status.to_status(status_of(error))
    if error.retry_after_s is None:
        return converted
    # RFC 9110 Retry-After is whole seconds; RetryInfo above has the exact delay.
    retry_after = ("retry-after", str(max(1, round(error.retry_after_s))))
    return _Status(converted.code, converted.details, (*converted.trailing_metadata, retry_after))


class _Status(grpc.Status):
    def __init__(self, code, details, trailing_metadata):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def internal_error(exc: BaseException) -> Internal:
    """The INTERNAL error a caller sees for an unexpected exception (logged elsewhere)."""
    # The exception's text stays in the server log: it may hold paths or data of other calls.
    return Internal(
        f"internal error ({type(exc).__name__}); the server log has the details",
        reason="INTERNAL",
        metadata={"exception": type(exc).__name__},
    )


def undecodable_error(exc: BaseException, method: str) -> InvalidArgument:
    """The INVALID_ARGUMENT for request bytes that are not a valid message of the method's type
    (not protobuf at all, or a string field that is not UTF-8)."""
    return InvalidArgument(
        f"the request is not a valid {method.rsplit('/', 1)[-1]} message "
        f"(protobuf decoding failed: {exc or type(exc).__name__})",
        reason="REQUEST_UNDECODABLE",
        metadata={"method": method},
    )
