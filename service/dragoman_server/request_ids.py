"""Request ids: the caller's `x-request-id` metadata (cleaned), else a new one. The call
interceptor returns it in the trailers and puts it on every log line of the call."""

import re
import uuid

REQUEST_ID = "x-request-id"
_UNSAFE = re.compile(r"[^A-Za-z0-9._:/+=@-]")


def request_id_of(metadata) -> str:
    """The caller's `x-request-id` (cleaned, at most 128 characters), else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            value = _UNSAFE.sub("", value)[:128]
            if value:
                return value
    return uuid.uuid4().hex
