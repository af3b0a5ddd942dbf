"""Configuration: one table of server settings, read from a TOML file, `DRAGOMAN_*` env vars and CLI flags.

Precedence, lowest first: defaults, the file's `[server]` table, environment, command-line flags.
Models are `[[models]]` tables in the file (see `ModelConfig`).
"""

import argparse
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError, InvalidArgument
from .languages import normalize, parse_pair

ENV_PREFIX = "DRAGOMAN_"


@dataclass(frozen=True)
class Setting:
    """One server setting: its `[server]` key, env var DRAGOMAN_<NAME> and flag --<name>."""

    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "127.0.0.1", "address to listen on (0.0.0.0 for all interfaces)"),
    Setting("port", int, 50051, "gRPC port (0 picks a free one)"),
    Setting("device", str, "auto", "cpu, cuda, cuda:N or auto (cuda when available)"),
    Setting("threads", int, 0, "torch intra-op threads per model (0: one per core)"),
    Setting("max_batch_size", int, 32, "segments per model batch"),
    Setting("max_batch_tokens", int, 8192, "input tokens per model batch"),
    Setting("max_queue_delay_ms", float, 5.0, "how long a batch waits to fill"),
    Setting("max_queue_size", int, 4096, "segments waiting per model before RESOURCE_EXHAUSTED"),
    Setting("max_texts_per_request", int, 128, "texts in one Translate call"),
    Setting("max_chars_per_text", int, 100_000, "characters in one text"),
    Setting("max_chars_per_request", int, 400_000, "characters in one call, all texts together"),
    Setting("max_glossary_entries", int, 1000, "glossary entries in one Translate call"),
    Setting("max_message_bytes", int, 8 * 1024 * 1024, "largest gRPC message received or sent"),
    Setting("max_concurrent_requests", int, 256, "calls handled at once; more are refused"),
    Setting("max_summary_rounds", int, 3, "rounds of summarising summaries for long inputs"),
    Setting("pivot_language", str, "en", "language to pivot through when no direct model exists"),
    Setting("grace_period_s", float, 30.0, "on SIGTERM, how long in-flight calls may finish"),
    Setting("offline", bool, False, "load models from local directories and the HF cache only"),
    Setting("warmup", bool, True, "run one generation per model before reporting SERVING"),
    Setting("metrics_port", int, 0, "Prometheus metrics HTTP port (0: off)"),
    Setting(
        "api_keys",
        tuple,
        (),
        "API keys accepted as 'authorization: Bearer KEY' (comma-separated; a list in TOML; empty: no auth)",
    ),
    Setting(
        "api_keys_file", str, "", "file of SHA-256 hex hashes of accepted API keys, one per line"
    ),
    Setting("quota_requests_per_minute", float, 0.0, "calls per minute per API key (0: unlimited)"),
    Setting(
        "quota_chars_per_minute",
        float,
        0.0,
        "input characters per minute per API key (0: unlimited)",
    ),
    Setting("tls_cert", str, "", "PEM server certificate chain file (with tls_key: serve TLS)"),
    Setting("tls_key", str, "", "PEM server private key file"),
    Setting(
        "tls_client_ca",
        str,
        "",
        "PEM CA file: require client certificates signed by it (mutual TLS)",
    ),
    Setting("log_level", str, "info", "debug, info, warning or error"),
    Setting("log_format", str, "text", "text or json"),
    Setting("cache_size", int, 10_000, "translation cache entries (segments); 0 turns it off"),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def _server_settings_class():
    namespace = {"__annotations__": {s.name: s.type for s in SETTINGS}}
    namespace.update({s.name: s.default for s in SETTINGS})
    namespace["__doc__"] = "Server settings; see SETTINGS for each one's meaning."
    return dataclass(frozen=True)(type("ServerSettings", (), namespace))


ServerSettings = _server_settings_class()


def _coerce(setting: Setting, value: Any, origin: str) -> Any:
    try:
        if setting.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if setting.type in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        if setting.type is tuple:  # a TOML list, or comma-separated text from env/flags
            items = value.split(",") if isinstance(value, str) else list(value)
            if not all(isinstance(i, str) for i in items):
                raise ValueError(value)
            return tuple(i.strip() for i in items if i.strip())
        return setting.type(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{origin}: {value!r} is not a valid {setting.type.__name__} for {setting.name}"
        ) from None


TASKS = ("translation", "summarization")
BACKENDS = ("torch", "ctranslate2")


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

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Translation pairs (source, target)."""
        return tuple(parse_pair(p, f"models.{self.name}.languages") for p in self.languages)


_MODEL_FIELDS = {f.name: f for f in fields(ModelConfig)}


def _model_config(table: Mapping[str, Any], index: int, base_dir: Path | None) -> ModelConfig:
    where = f"models[{index}]"
    unknown = sorted(set(table) - set(_MODEL_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_MODEL_FIELDS)})"
        )
    for key in ("name", "task", "source", "languages"):
        if not table.get(key):
            raise ConfigError(f"{where}: {key!r} is required")
    name = str(table["name"])
    where = f"models[{index}] ({name})"
    values = dict(table)
    if values["task"] not in TASKS:
        raise ConfigError(f"{where}: task must be one of {TASKS}, not {values['task']!r}")
    if values.get("backend", "torch") not in BACKENDS:
        raise ConfigError(f"{where}: backend must be one of {BACKENDS}, not {values['backend']!r}")
    languages = values["languages"]
    if isinstance(languages, str) or not isinstance(languages, list):
        raise ConfigError(f"{where}: languages must be a list such as ['pt-en'] or ['en']")
    source = str(values["source"])
    if base_dir is not None and source.startswith(("./", "../")):
        source = str((base_dir / source).resolve())
    values["source"] = os.path.expanduser(source)
    try:
        if values["task"] == "translation":
            pairs = [parse_pair(str(p), f"{where}.languages") for p in languages]
            values["languages"] = tuple(
                f"{s}-{t}" if "-" not in s + t else f"{s}:{t}" for s, t in pairs
            )
        else:
            values["languages"] = tuple(normalize(str(c), f"{where}.languages") for c in languages)
    except InvalidArgument as exc:
        raise ConfigError(str(exc)) from None
    for key in ("language_codes", "glossary"):
        if not isinstance(values.get(key, {}), Mapping):
            raise ConfigError(f"{where}: {key} must be a table")
    return ModelConfig(**values)


@dataclass(frozen=True)
class Config:
    """The whole configuration: server settings and models."""

    server: ServerSettings
    models: tuple[ModelConfig, ...]

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
        unknown = sorted(set(data) - {"server", "models"})
        if unknown:
            raise ConfigError(f"{origin}: unknown table {unknown[0]!r} (known: server, models)")
        values: dict[str, Any] = {}
        for key, value in dict(data.get("server", {})).items():
            if key not in _BY_NAME:
                raise ConfigError(
                    f"{origin}: unknown setting server.{key} (known: {', '.join(_BY_NAME)})"
                )
            values[key] = _coerce(_BY_NAME[key], value, f"{origin} [server]")
        for setting in SETTINGS:
            if env and setting.env in env:
                values[setting.name] = _coerce(setting, env[setting.env], setting.env)
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = _coerce(_BY_NAME[key], value, _BY_NAME[key].flag)
        models = tuple(
            _model_config(table, i, base_dir) for i, table in enumerate(data.get("models", []))
        )
        if not models:
            raise ConfigError(f"{origin}: no [[models]] configured")
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"{origin}: model name {duplicates[0]!r} is used twice")
        server = ServerSettings(**values)
        if server.log_format not in ("text", "json"):
            raise ConfigError(f"log_format must be 'text' or 'json', not {server.log_format!r}")
        return cls(server=server, models=models)


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
        else:
            kwargs["type"] = str if s.type is tuple else s.type
            kwargs["metavar"] = "LIST" if s.type is tuple else s.type.__name__.upper()
        parser.add_argument(s.flag, help=f"{s.help} [{s.env}, default {s.default!r}]", **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags."""
    return {
        s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name, None) is not None
    }
