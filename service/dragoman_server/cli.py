"""`dragoman serve`, `dragoman models pull` and `dragoman quality` (reached through the client CLI, `dragoman.cli`)."""

import argparse
import asyncio
import sys

from .errors import ConfigError
from .logs import JsonFormatter, configure_logging  # noqa: F401  (JsonFormatter: re-exported)
from .settings import Config, add_arguments, load_config, overrides_from_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dragoman", description="Dragoman server commands")
    commands = parser.add_subparsers(dest="command", required=True)
    # prog: the command as typed through the `dragoman` entry point (dragoman.cli).
    serve = commands.add_parser("serve", prog="dragoman serve", help="run the gRPC server")
    add_arguments(serve)
    pull = commands.add_parser(
        "pull",
        prog="dragoman models pull",
        help="download every configured model into the HF cache",
        description="Download every Hub model of the config into the local Hugging Face cache "
        "($HF_HOME), skipping files already there. Downloads even when serving is offline "
        "(HF_HUB_OFFLINE=1, `offline = true`).",
    )
    pull.add_argument(
        "--config", help="TOML config file (default: $DRAGOMAN_CONFIG, else built-in)"
    )
    return parser


def _load(args: argparse.Namespace) -> Config:
    overrides = overrides_from_args(args) if args.command == "serve" else {}
    config = load_config(args.config, overrides=overrides)
    if args.command == "serve":
        # The files the settings name (API keys, TLS) are checked now, before torch is imported
        # or the port is bound: a bad one is one line and exit 2 like any bad setting.
        from .admission import Admission
        from .tls import server_credentials
        from .tracing import endpoint_from

        Admission.from_config(config)
        server_credentials(config.server, config.origin)
        endpoint_from(config.server)  # the standard OTEL_EXPORTER_OTLP_ENDPOINT, if set
    return config


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["quality"]:  # its own parser: `dragoman quality --help`
        from .quality import main as quality_main

        return quality_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"dragoman: config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "pull":
        from .pull import pull_models

        return pull_models(config.models)
    from .server import serve

    configure_logging(config.server.log_level, config.server.log_format)
    try:
        return asyncio.run(serve(config))
    except ConfigError as exc:  # TLS files, API key file
        print(f"dragoman: config error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"dragoman: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
