"""Logging: text or JSON lines, with the current call's request id on every record."""

import contextvars
import json
import logging
import sys
import time

# The request id of the call being handled; set by the call interceptor, read by the filter.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dragoman_request_id", default=None
)

ACCESS_LOG = "dragoman_server.access"
_FIELDS = (
    "request_id",
    "method",
    "status",
    "reason",
    "duration_ms",
    "peer",
    "key",
    "message_detail",
)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the current call's, if any) to each record that has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            rid = request_id_var.get()
            if rid is not None:
                record.request_id = rid
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _FIELDS:
            if getattr(record, key, None) is not None:
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request_id]`; access lines are
    `time INFO dragoman_server.access: METHOD STATUS 1.2ms peer=... request_id=... [reason=...] key=...`.
    """

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        if record.name == ACCESS_LOG:
            for name in ("peer", "request_id", "reason", "key"):
                value = getattr(record, name, None)
                if value not in (None, "", "-"):
                    text += f" {name}={value}"
        elif rid:
            text += f" [{rid}]"
        return text


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # transformers' generation-config chatter is not for operators.
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    # huggingface_hub (imported by transformers) gives its logger a stderr handler of its own and
    # still propagates to the root: each of its warnings came out twice. Ours alone now.
    logging.getLogger("huggingface_hub").handlers.clear()
