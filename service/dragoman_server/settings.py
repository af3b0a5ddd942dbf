"""Configuration: one table of server settings, read from a TOML file, `DRAGOMAN_*` env vars and CLI flags.

Precedence, lowest first: defaults, the file's `[server]` table, environment, command-line flags.
Models are `[[models]]` tables in the file (see `ModelConfig`).
"""

import argparse
import difflib
import math
import os
import re
import string
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from .auth import check_key
from .errors import ConfigError, InvalidArgument
from .languages import normalize, parse_pair
from .tracing import endpoint_problem

ENV_PREFIX = "DRAGOMAN_"


_DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")
MAX_THREADS = 256  # torch and CTranslate2 pools; far more than any host has cores
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def _device_problem(value: str) -> str | None:
    return None if _DEVICE.match(value) else "cpu, cuda, cuda:N or auto"


def _language_problem(value: str) -> str | None:
    try:
        normalize(value, "")
    except InvalidArgument:
        return "a language code such as 'en'"
    return None


def _host_problem(value: str) -> str | None:
    return None if value and not any(c.isspace() for c in value) else "a host name or address"


def _http_host_problem(value: str) -> str | None:
    return (
        None
        if not value or _host_problem(value) is None
        else "empty (same as host) or a host name or address"
    )


def _quota_problem(value: float) -> str | None:
    return None if value == 0 or value >= 1 else "0 (unlimited) or a number >= 1"


def _name_problem(value: str) -> str | None:
    return None if value.strip() else "a non-empty name"


@dataclass(frozen=True)
class Setting:
    """One server setting: its `[server]` key, env var DRAGOMAN_<NAME> and flag --<name>.

    Numbers must lie in `minimum`..`maximum` (by default >= 0: no setting takes a negative
    value); strings may be limited to `choices` or checked by `check` (returns what is allowed,
    or None when the value is fine). `fail_closed`: a value given explicitly but empty is an
    error rather than "off" (an unfilled secret must not turn authentication or TLS off).
    """

    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = 0
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None
    fail_closed: bool = False
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        """What values are allowed, in words."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.type is bool:
            return "true or false"
        if self.type in (int, float):
            kind = "an integer" if self.type is int else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{kind} from {self.minimum:g} to {self.maximum:g}"
            if self.minimum is not None:
                return f"{kind} >= {self.minimum:g}"
            return kind
        if self.type is tuple:
            return "a list of strings (comma-separated in env and flags)"
        return "a string"


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "host",
        str,
        "127.0.0.1",
        "address to listen on (0.0.0.0 for all interfaces)",
        check=_host_problem,
    ),
    Setting("port", int, 50051, "gRPC port (0 picks a free one)", maximum=65535),
    Setting(
        "device",
        str,
        "auto",
        "cpu, cuda, cuda:N or auto (cuda when available)",
        check=_device_problem,
    ),
    Setting(
        "threads",
        int,
        0,
        f"torch intra-op threads per model (0: one per core; at most {MAX_THREADS})",
        maximum=MAX_THREADS,
    ),
    Setting("max_batch_size", int, 32, "segments per model batch", minimum=1),
    Setting("max_batch_tokens", int, 8192, "input tokens per model batch", minimum=1),
    Setting("max_queue_delay_ms", float, 5.0, "how long a batch waits to fill", maximum=60_000),
    Setting(
        "max_queue_size",
        int,
        4096,
        "segments waiting per model before RESOURCE_EXHAUSTED",
        minimum=1,
    ),
    Setting("max_texts_per_request", int, 128, "texts in one Translate call", minimum=1),
    Setting("max_chars_per_text", int, 100_000, "characters in one text", minimum=1),
    Setting(
        "max_chars_per_request",
        int,
        400_000,
        "characters in one call, all texts together",
        minimum=1,
    ),
    Setting("max_glossary_entries", int, 1000, "glossary entries in one Translate call", minimum=0),
    Setting(
        "max_message_bytes",
        int,
        8 * 1024 * 1024,
        "largest gRPC message received or sent",
        minimum=1024,
        maximum=2**31 - 1,
    ),
    Setting(
        "max_concurrent_requests",
        int,
        256,
        "calls handled at once; more are refused (RESOURCE_EXHAUSTED, TOO_MANY_REQUESTS)",
        minimum=1,
        maximum=100_000,
    ),
    Setting(
        "max_summary_rounds",
        int,
        3,
        "rounds of summarising summaries for long inputs",
        minimum=1,
        maximum=20,
    ),
    Setting(
        "pivot_language",
        str,
        "en",
        "language to pivot through when no direct model exists",
        check=_language_problem,
    ),
    Setting(
        "grace_period_s",
        float,
        30.0,
        "on SIGTERM, how long in-flight calls may finish",
        maximum=86_400,
    ),
    Setting("offline", bool, False, "load models from local directories and the HF cache only"),
    Setting("warmup", bool, True, "run one generation per model before reporting SERVING"),
    Setting("metrics_port", int, 0, "Prometheus metrics HTTP port (0: off)", maximum=65535),
    Setting(
        "http", bool, False, "also serve HTTP/JSON (transcoded API, LibreTranslate API, desk page)"
    ),
    Setting(
        "http_host", str, "", "HTTP address (empty: the same as host)", check=_http_host_problem
    ),
    Setting(
        "http_port", int, 8080, "HTTP port when http is on (0 picks a free one)", maximum=65535
    ),
    Setting(
        "api_keys",
        tuple,
        (),
        "API keys accepted as 'authorization: Bearer KEY' (comma-separated; a list in TOML; unset: no auth; set but empty: an error)",
        fail_closed=True,
        secret=True,
    ),
    Setting(
        "api_keys_file",
        str,
        "",
        "file of SHA-256 hex hashes of accepted API keys, one per line (at least one)",
        fail_closed=True,
    ),
    Setting(
        "quota_requests_per_minute",
        float,
        0.0,
        "calls per minute per API key, per server process (0: unlimited)",
        check=_quota_problem,
    ),
    Setting(
        "quota_chars_per_minute",
        float,
        0.0,
        "input characters per minute per API key, per server process (0: unlimited; a larger call is refused)",
        check=_quota_problem,
    ),
    Setting(
        "tls_cert",
        str,
        "",
        "PEM server certificate chain file (with tls_key: serve TLS)",
        fail_closed=True,
    ),
    Setting("tls_key", str, "", "PEM server private key file", fail_closed=True),
    Setting(
        "tls_client_ca",
        str,
        "",
        "PEM CA file: require client certificates signed by it (mutual TLS)",
        fail_closed=True,
    ),
    Setting("log_level", str, "info", "debug, info, warning or error", choices=LOG_LEVELS),
    Setting("log_format", str, "text", "text or json", choices=LOG_FORMATS),
    Setting("cache_size", int, 10_000, "translation cache entries (segments); 0 turns it off"),
    Setting(
        "otel_exporter_otlp_endpoint",
        str,
        "",
        "OTLP/gRPC collector URL for OpenTelemetry traces (empty: off, unless OTEL_EXPORTER_OTLP_ENDPOINT is set)",
        check=endpoint_problem,
    ),
    Setting(
        "otel_service_name", str, "dragoman", "service.name of exported traces", check=_name_problem
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def _server_settings_class():
    namespace = {"__annotations__": {s.name: s.type for s in SETTINGS}}
    namespace.update({s.name: s.default for s in SETTINGS})
    namespace["__doc__"] = "Server settings; see SETTINGS for each one's meaning."
    return dataclass(frozen=True)(type("ServerSettings", (), namespace))


ServerSettings = _server_settings_class()


def _did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"


def _number(value: Any, kind: type, from_text: bool) -> Any:
    """`value` as an int or float, or ValueError; no silent rounding, no NaN or infinity."""
    if isinstance(value, bool):
        raise ValueError(value)
    if from_text:
        value = value.strip()
        number = int(value) if kind is int else float(value)
    elif kind is int:
        if not isinstance(value, int):
            raise ValueError(value)
        number = value
    else:
        if not isinstance(value, int | float):
            raise ValueError(value)
        number = float(value)
    if kind is float and not math.isfinite(number):
        raise ValueError(value)
    return number


def _coerce(setting: Setting, value: Any, where: str) -> Any:
    """The checked value of `setting`, given as `value` in `where` (a file, env var or flag):
    ConfigError naming all three and what is allowed, never a silent change."""
    from_text = isinstance(value, str) and where.startswith((ENV_PREFIX, "--"))
    shown = "(hidden)" if setting.secret else repr(value)

    def invalid(allowed: str | None = None) -> ConfigError:
        return ConfigError(
            f"{where}: {setting.name} = {shown} is invalid: "
            f"{setting.name} must be {allowed or setting.allowed()}"
        )

    try:
        if setting.type is bool:
            if isinstance(value, bool):
                return value
            if not from_text:
                raise ValueError(value)
            text = value.strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if setting.type in (int, float):
            number = _number(value, setting.type, from_text)
            if (setting.minimum is not None and number < setting.minimum) or (
                setting.maximum is not None and number > setting.maximum
            ):
                raise ValueError(value)
            if setting.check and setting.check(number):
                raise invalid(setting.check(number))
            return number
        if setting.type is tuple:  # a TOML list, or comma-separated text from env/flags
            if isinstance(value, str):
                items = value.split(",")
            elif isinstance(value, list | tuple):
                items = value
            else:
                raise ValueError(value)
            if not all(isinstance(i, str) for i in items):
                raise ValueError(value)
            kept = tuple(i.strip() for i in items if i.strip())
            if setting.fail_closed and not kept:
                raise ConfigError(
                    f"{where}: {setting.name} is set but holds no value; "
                    f"remove it to turn {setting.name} off"
                )
            if setting.name == "api_keys":
                for index, key in enumerate(kept):
                    check_key(key, f"{where}: {setting.name}[{index}]")
            return kept
        if not isinstance(value, str):
            raise ValueError(value)
        text = value.strip() if from_text else value
        if setting.fail_closed and not text.strip():
            raise ConfigError(
                f"{where}: {setting.name} is set but empty; remove it to turn {setting.name} off"
            )
        if setting.choices:
            text = text.strip().lower()
            if text not in setting.choices:
                raise ValueError(value)
        if setting.check and setting.check(text):
            raise invalid(setting.check(text))
        return text
    except (TypeError, ValueError):
        raise invalid() from None


TASKS = ("translation", "summarization")
BACKENDS = ("torch", "ctranslate2")
QUANTIZE = ("dynamic-int8",)
BATCHING = ("continuous", "paged", "static")
OUTPUT_CHECKS = ("regenerate", "flag", "off")
# The named fields a `prompt_template` may use (see prompts.py).
PROMPT_FIELDS = ("text", "source_language", "target_language", "words", "format")
COMPUTE_TYPES = (
    "auto",
    "default",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)


@dataclass(frozen=True)
class ModelConfig:
    """One `[[models]]` table."""

    name: str
    task: str
    source: str
    languages: tuple[str, ...]
    backend: str = "torch"
    revision: str | None = None
    device: str | None = None
    num_beams: int | None = None
    max_new_tokens: int | None = None
    no_repeat_ngram_size: int | None = None
    repetition_penalty: float | None = None
    prefix: str | None = None
    quantize: str | None = None
    compute_type: str = "auto"
    inter_threads: int | None = None  # ctranslate2: batches run in parallel (None: auto)
    intra_threads: int | None = None  # ctranslate2: threads per batch (None: auto)
    language_codes: Mapping[str, str] = field(default_factory=dict)
    glossary: Mapping[str, str] = field(default_factory=dict)
    # Instruction (decoder-only chat) models only; see prompts.py and engines/causal.py.
    system_prompt: str | None = None  # None: the built-in one; "": none
    prompt_template: str | None = None  # None: the built-in one for the task
    # continuous (iteration-level, Dragoman's), paged (transformers'), static (batcher.py)
    batching: str = "continuous"
    kv_cache_mb: int = 512  # continuous batching: KV cache plus one step's working memory
    context_window: int | None = None  # cap on the model's own window (tokens)
    # regenerate: a flagged segment is generated once more (see output_checks); flag: flagged
    # only; off: not checked (for a benchmark's random-weight models, which fail every check).
    output_checks: str = "regenerate"

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Translation pairs (source, target)."""
        return tuple(parse_pair(p, f"models.{self.name}.languages") for p in self.languages)


_MODEL_FIELDS = {f.name: f for f in fields(ModelConfig)}


@dataclass(frozen=True)
class _Key:
    """The type and range of one `[[models]]` key."""

    # "str" (non-empty), "text" (any string), "int", "float", "strings", "table", "template"
    kind: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind in ("int", "float"):
            kind = "an integer" if self.kind == "int" else "a number"
            if self.maximum is not None:
                return f"{kind} from {self.minimum:g} to {self.maximum:g}"
            return f"{kind} >= {self.minimum:g}" if self.minimum else f"{kind} > 0"
        return {
            "str": "a non-empty string",
            "text": "a string (empty for none)",
            "strings": "a non-empty list of strings",
            "table": 'a table of strings to strings, e.g. { "pt-BR" = ">>pob<<" }',
            "template": "a string with {text} whose only {fields} are "
            + ", ".join("{" + f + "}" for f in PROMPT_FIELDS)
            + " (double other braces: {{ }})",
        }[self.kind]

    def problem(self, value: Any) -> bool:
        """True when `value` is not allowed."""
        if self.kind == "text":
            return not isinstance(value, str)
        if self.kind == "template":
            return _template_problem(value)
        if self.kind == "str":
            if not isinstance(value, str) or not value.strip():
                return True
            if self.choices and value not in self.choices:
                return True
            return bool(self.check and self.check(value))
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(
                value, int if self.kind == "int" else int | float
            ):
                return True
            if self.kind == "float" and not math.isfinite(value):
                return True
            if self.minimum is None:
                return value <= 0
            return value < self.minimum or (self.maximum is not None and value > self.maximum)
        if self.kind == "strings":
            return (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) and v.strip() for v in value)
            )
        return not isinstance(value, Mapping) or not all(
            isinstance(k, str) and k.strip() and isinstance(v, str) for k, v in value.items()
        )


_MODEL_KEYS: dict[str, _Key] = {
    "name": _Key("str"),
    "task": _Key("str", choices=TASKS),
    "source": _Key("str"),
    "languages": _Key("strings"),
    "backend": _Key("str", choices=BACKENDS),
    "revision": _Key("str"),
    "device": _Key("str", check=_device_problem),
    "num_beams": _Key("int", minimum=1, maximum=64),
    "max_new_tokens": _Key("int", minimum=1, maximum=65_536),
    "no_repeat_ngram_size": _Key("int", minimum=0, maximum=64),
    "repetition_penalty": _Key("float"),
    "prefix": _Key("text"),  # "" turns the model's default task prefix off
    "quantize": _Key("str", choices=QUANTIZE),
    "compute_type": _Key("str", choices=COMPUTE_TYPES),
    "inter_threads": _Key("int", minimum=1, maximum=MAX_THREADS),
    "intra_threads": _Key("int", minimum=0, maximum=MAX_THREADS),
    "language_codes": _Key("table"),
    "glossary": _Key("table"),
    "system_prompt": _Key("text"),  # "" turns the built-in system prompt off
    "prompt_template": _Key("template"),
    "batching": _Key("str", choices=BATCHING),
    "kv_cache_mb": _Key("int", minimum=1, maximum=1_048_576),
    "context_window": _Key("int", minimum=16, maximum=10_000_000),
    "output_checks": _Key("str", choices=OUTPUT_CHECKS),
}
assert set(_MODEL_KEYS) == set(_MODEL_FIELDS), "every ModelConfig field needs a _Key"


def _template_problem(value: Any) -> bool:
    """True unless `value` is a str.format template using only PROMPT_FIELDS, {text} included."""
    if not isinstance(value, str):
        return True
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(value)]
    except ValueError:  # unbalanced braces
        return True
    names = [f for f, _, _ in fields if f is not None]
    # Plain fields only: no "{text!r}", "{words:>5}" (nothing a caller's text could be reshaped by).
    reshaped = any(spec or conv for f, spec, conv in fields if f is not None)
    return reshaped or "text" not in names or any(n not in PROMPT_FIELDS for n in names)


def _model_config(
    table: Any, index: int, base_dir: Path | None, origin: str = "config"
) -> ModelConfig:
    where = f"{origin}: models[{index}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table ([[models]])")
    for key in table:
        if key not in _MODEL_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{_did_you_mean(key, _MODEL_KEYS)}")
    for key in ("name", "task", "source", "languages"):
        if key not in table:
            raise ConfigError(f"{where}: {key!r} is required")
    if isinstance(table["name"], str) and table["name"].strip():
        where = f"{origin}: models[{index}] ({table['name']})"
    for key, value in table.items():
        if _MODEL_KEYS[key].problem(value):
            raise ConfigError(
                f"{where}: {key} = {value!r} is invalid: {key} must be {_MODEL_KEYS[key].allowed()}"
            )
    values = dict(table)
    source = values["source"]
    if base_dir is not None and source.startswith(("./", "../")):
        source = str((base_dir / source).resolve())
    values["source"] = os.path.expanduser(source)
    try:
        if values["task"] == "translation":
            pairs = [parse_pair(p, f"{where}.languages") for p in values["languages"]]
            values["languages"] = tuple(
                f"{s}-{t}" if "-" not in s + t else f"{s}:{t}" for s, t in pairs
            )
        else:
            values["languages"] = tuple(
                normalize(c, f"{where}.languages") for c in values["languages"]
            )
    except InvalidArgument as exc:
        raise ConfigError(str(exc)) from None
    return ModelConfig(**values)


@dataclass(frozen=True)
class Config:
    """The whole configuration: server settings and models; `sources` says where each server
    setting that is not a default came from (a file, env var or flag), for error messages."""

    server: ServerSettings
    models: tuple[ModelConfig, ...]
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def origin(self, name: str) -> str:
        """`name` and where its value came from, e.g. `DRAGOMAN_TLS_CERT` or `x.toml [server] tls_cert`."""
        where = self.sources.get(name)
        if where is None:
            return name
        return (
            where if where.startswith(ENV_PREFIX) or where.startswith("--") else (f"{where} {name}")
        )

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        base_dir: Path | None = None,
        origin: str = "config",
    ) -> "Config":
        """Build from a parsed TOML document, then apply env vars and explicit overrides."""
        for key in data:
            if key not in ("server", "models"):
                raise ConfigError(
                    f"{origin}: unknown table {key!r}{_did_you_mean(key, ('server', 'models'))}"
                )
        server_table = data.get("server", {})
        if not isinstance(server_table, Mapping):
            raise ConfigError(f"{origin}: server must be a table ([server]), not {server_table!r}")
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key, value in server_table.items():
            if key not in _BY_NAME:
                raise ConfigError(
                    f"{origin}: unknown setting server.{key}{_did_you_mean(key, _BY_NAME)}"
                )
            values[key] = _coerce(_BY_NAME[key], value, f"{origin} [server]")
            sources[key] = f"{origin} [server]"
        for setting in SETTINGS:
            if env and setting.env in env:
                values[setting.name] = _coerce(setting, env[setting.env], setting.env)
                sources[setting.name] = setting.env
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = _coerce(_BY_NAME[key], value, _BY_NAME[key].flag)
                sources[key] = _BY_NAME[key].flag
        models_list = data.get("models", [])
        if not isinstance(models_list, list):
            raise ConfigError(f"{origin}: models must be an array of tables ([[models]])")
        models = tuple(
            _model_config(table, i, base_dir, origin) for i, table in enumerate(models_list)
        )
        if not models:
            raise ConfigError(f"{origin}: no [[models]] configured")
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"{origin}: model name {duplicates[0]!r} is used twice")
        return cls(server=ServerSettings(**values), models=models, sources=sources)


def default_config_text() -> str:
    """The shipped default config (real Hub models)."""
    return resources.files(__package__).joinpath("default_config.toml").read_text("utf-8")


def load_config(
    path: str | os.PathLike | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load the config from `path`, else $DRAGOMAN_CONFIG, else the shipped default."""
    env = os.environ if env is None else env
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    if path is None:
        text, origin, base_dir = default_config_text(), "default config", None
    else:
        file = Path(path)
        try:
            text = file.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {str(file)!r}: {exc.strerror}") from None
        origin, base_dir = str(file), file.resolve().parent
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from None
    return Config.from_dict(data, env=env, overrides=overrides, base_dir=base_dir, origin=origin)


def settings_table() -> str:
    """The server settings as a Markdown table (the README's copy is checked against it)."""
    rows = ["| Setting | Env | Flag | Default | Meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        default = ", ".join(s.default) if s.type is tuple else s.default
        if s.type is bool:
            default = str(default).lower()
        shown = f"`{default}`" if default != "" else "(empty)"
        rows.append(
            f"| `{s.name}` | `{s.env}` | `{s.flag}` | {shown} | {s.help.replace('|', '/')} |"
        )
    return "\n".join(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--config` and one flag per server setting."""
    parser.add_argument(
        "--config", help="TOML config file (default: $DRAGOMAN_CONFIG, else built-in)"
    )
    for s in SETTINGS:
        kwargs: dict[str, Any] = {"dest": s.name, "default": None}
        if s.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:  # text: checked by _coerce, so a bad flag is one line like a bad file value
            kwargs["type"] = str
            kwargs["metavar"] = "LIST" if s.type is tuple else s.type.__name__.upper()
        parser.add_argument(s.flag, help=f"{s.help} [{s.env}, default {s.default!r}]", **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags."""
    return {
        s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name, None) is not None
    }
