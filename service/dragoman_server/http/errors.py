"""Errors on the HTTP face: a domain error as `google.rpc.Status` JSON, in the shape of Google's
JSON APIs (https://cloud.google.com/apis/design/errors#http_mapping):

    {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "...",
               "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "QUOTA_EXCEEDED", "domain": "dragoman.v1", ...}, ...]}}

`code` is the HTTP status (the standard gRPC-to-HTTP mapping, `HTTP_STATUS`), `status` the gRPC
code's name, `details` the same messages gRPC callers get in `grpc-status-details-bin`
(`status.status_of`), each in the canonical proto3 JSON mapping (`@type` names the message).
An error with a retry delay also sets `Retry-After` (whole seconds, at least 1).
"""

from __future__ import annotations

from aiohttp import web
from google.protobuf import json_format

from ..errors import DragomanServerError
from ..request_ids import REQUEST_ID
from ..status import status_of

# google/rpc/code.proto's HTTP mapping (the one grpc-gateway and Google's APIs use).
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}
# The other way, for errors aiohttp raises itself (no route, wrong method).
GRPC_CODE_OF_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def http_status_of(error: DragomanServerError) -> int:
    return HTTP_STATUS.get(error.status, 500)


def error_json(error: DragomanServerError) -> dict:
    """`{"error": {...}}`: the error as `google.rpc.Status` JSON (see the module docstring)."""
    status = status_of(error)
    return {
        "error": {
            "code": http_status_of(error),
            "status": error.status,
            "message": status.message,
            "details": [json_format.MessageToDict(detail) for detail in status.details],
        }
    }


def retry_after_header(error: DragomanServerError) -> dict[str, str]:
    """`Retry-After` (RFC 9110 whole seconds) for an error with a retry delay."""
    if error.retry_after_s is None:
        return {}
    return {"Retry-After": str(max(1, round(error.retry_after_s)))}


def error_response(error: DragomanServerError, request_id: str | None = None) -> web.Response:
    """The HTTP response of a domain error: status JSON, HTTP status, Retry-After, request id."""
    headers = retry_after_header(error)
    if request_id:
        headers[REQUEST_ID] = request_id
    return web.json_response(error_json(error), status=http_status_of(error), headers=headers)


def generic_error_json(http_status: int, message: str) -> dict:
    """The status JSON of an error aiohttp raised (no such route, wrong method): no details."""
    return {
        "error": {
            "code": http_status,
            "status": GRPC_CODE_OF_HTTP.get(http_status, "UNKNOWN"),
            "message": message,
            "details": [],
        }
    }
