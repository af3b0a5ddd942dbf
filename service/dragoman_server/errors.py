"""Domain errors. Each maps to one gRPC status code in `interceptors.py`; nothing here imports grpc."""


class DragomanServerError(Exception):
    """Base class: a request failed for a reason the caller should see."""

    status = "INTERNAL"

    def __init__(self, message: str, *, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidArgument(DragomanServerError):
    """The request is malformed: the message names the field."""

    status = "INVALID_ARGUMENT"


class NotFound(DragomanServerError):
    """A named thing (a model) does not exist."""

    status = "NOT_FOUND"


class ResourceExhausted(DragomanServerError):
    """A queue, limit or quota is full; the caller may retry later."""

    status = "RESOURCE_EXHAUSTED"


class Unavailable(DragomanServerError):
    """The service cannot serve this now (a model is loading, failed to load, or shutting down)."""

    status = "UNAVAILABLE"


class Unauthenticated(DragomanServerError):
    """No valid credentials."""

    status = "UNAUTHENTICATED"


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting."""


class ModelLoadError(Exception):
    """A model could not be loaded; the message is one line naming the model and the fix."""
