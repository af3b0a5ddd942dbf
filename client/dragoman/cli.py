"""The ``dragoman`` command line.

Client commands (need only the base install)::

    dragoman translate --to en [--from pt] [--model M] [--html] [--glossary TERM=TRANSLATION]
                       [--stream] [FILE|-]
    dragoman summarize [--to LANG] [--from LANG] [--max-words N] [--length short|medium|long]
                       [--bullets] [--stream] [FILE|-]
    dragoman detect [FILE|-]
    dragoman models list
    dragoman health

each with ``--server HOST:PORT`` (default ``$DRAGOMAN_SERVER``, else ``localhost:50051``; a comma
list or ``dns:///name:port`` balances over replicas), ``--timeout SECONDS``, ``--api-key KEY``
(default ``$DRAGOMAN_API_KEY``), TLS options and ``--json``.

Server commands (need ``pip install 'dragoman[server]'``); their arguments pass through as they
are to the server's own command line::

    dragoman serve [...]
    dragoman models pull [...]

Exit status: 0 on success; 1 when a call fails (``error: CODE: message`` on stderr) or ``health``
is not SERVING; 2 for a usage error (bad arguments, unreadable input); 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from dragoman import _requests
from dragoman.client import Client
from dragoman.errors import DragomanError

ENV_SERVER = "DRAGOMAN_SERVER"
ENV_API_KEY = "DRAGOMAN_API_KEY"
DEFAULT_TIMEOUT = 120.0

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with the command line or its input: exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["serve"]:
            return _run_server("serve", argv[1:], "dragoman serve")
        if argv[:2] == ["models", "pull"]:
            return _run_server("pull", argv[2:], "dragoman models pull")
        if argv[:1] == ["quality"]:
            return _run_server("quality", argv[1:], "dragoman quality")
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exit_:  # --help, --version, or a usage error already printed
            return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
        return args.handler(args)
    except DragomanError as error:
        _error(str(error))
        return EXIT_ERROR
    except UsageError as error:
        _error(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `dragoman translate ... | head`
        try:
            sys.stdout = open(os.devnull, "w")  # silence the flush at exit
        except OSError:
            pass
        return EXIT_ERROR


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _run_server(command: str, rest: list[str], label: str) -> int:
    """Runs ``dragoman_server.cli.main([command, *rest])``, imported only now."""
    try:
        from dragoman_server.cli import main as server_main

        return int(server_main([command, *rest]) or 0)
    except ModuleNotFoundError as error:
        # Anything missing but this package itself (dragoman_server, torch, transformers, the
        # health-checking package...) means the server extra is not installed.
        if (error.name or "dragoman").partition(".")[0] == "dragoman":
            raise
        print(f"{label} needs the server extra: pip install 'dragoman[server]'", file=sys.stderr)
        return EXIT_ERROR


# --------------------------------------------------------------------------------------------
# Parser


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {value!r}")
    return number


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {value!r}")
    return number


def _glossary_entry(value: str) -> tuple[str, str]:
    term, _, translation = value.partition("=")
    if not term:
        raise argparse.ArgumentTypeError(f"expected TERM=TRANSLATION, not {value!r}")
    return term, translation


def add_connection_arguments(group, timeout: float = DEFAULT_TIMEOUT) -> None:
    """The flags that say how to reach a server, besides `--server`: deadline, API key and TLS
    (shared with `dragoman quality`)."""
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=timeout,
        help="deadline of each call (default: %(default)s)",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get(ENV_API_KEY) or None,
        help=f"API key, sent as a bearer token (default: ${ENV_API_KEY})",
    )
    group.add_argument("--tls", action="store_true", help="connect with TLS")
    group.add_argument("--ca-cert", metavar="FILE", help="PEM root certificates (implies TLS)")
    group.add_argument("--cert", metavar="FILE", help="PEM client certificate chain (mTLS)")
    group.add_argument("--key", metavar="FILE", help="PEM client private key (mTLS)")


def client_from_arguments(args: argparse.Namespace, target: str | None = None) -> Client:
    """A Client for `target` (default `args.server`) with the connection flags' settings;
    UsageError when they do not make a client."""
    try:
        return Client(
            target or args.server,
            timeout=args.timeout,
            api_key=args.api_key,
            tls=args.tls,
            root_certificates=args.ca_cert,
            private_key=args.key,
            certificate_chain=args.cert,
        )
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dragoman",
        description="Translate, summarise and detect the language of news text with a "
        "Dragoman server.",
        epilog="Exit status: 0 ok, 1 a call failed, 2 usage error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"dragoman {_requests.__version__}")

    common = argparse.ArgumentParser(add_help=False)
    connection = common.add_argument_group("connection")
    connection.add_argument(
        "--server",
        metavar="HOST:PORT",
        default=os.environ.get(ENV_SERVER) or _requests.DEFAULT_TARGET,
        help=f"the server: HOST:PORT, HOST:PORT,HOST:PORT (round robin) or dns:///NAME:PORT "
        f"(default: ${ENV_SERVER}, else %(default)s)",
    )
    add_connection_arguments(connection)
    common.add_argument("--json", action="store_true", help="print JSON instead of plain text")

    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    translate = commands.add_parser(
        "translate", parents=[common], help="translate a text", description="Translate a text."
    )
    translate.add_argument("--to", required=True, metavar="LANG", help="target language")
    translate.add_argument(
        "--from", dest="source", metavar="LANG", help="source language (default: detect)"
    )
    translate.add_argument("--model", metavar="NAME", help="a configured model to use")
    translate.add_argument("--html", action="store_true", help="the input is HTML")
    translate.add_argument(
        "--glossary",
        metavar="TERM=TRANSLATION",
        type=_glossary_entry,
        action="append",
        help="fix a term's translation (TERM or TERM= keeps it as is); repeatable",
    )
    translate.add_argument(
        "--stream",
        action="store_true",
        help="print paragraphs as they are translated (JSON Lines with --json)",
    )
    translate.add_argument("file", nargs="?", default="-", metavar="FILE", help="default: stdin")
    translate.set_defaults(handler=_translate)

    summarize = commands.add_parser(
        "summarize", parents=[common], help="summarise a text", description="Summarise a text."
    )
    summarize.add_argument("--to", metavar="LANG", help="summary language (default: the text's)")
    summarize.add_argument(
        "--from", dest="source", metavar="LANG", help="source language (default: detect)"
    )
    summarize.add_argument(
        "--max-words", type=_non_negative_int, metavar="N", help="at most N words"
    )
    summarize.add_argument("--length", choices=("short", "medium", "long"))
    summarize.add_argument("--bullets", action="store_true", help="one '- ' line per sentence")
    summarize.add_argument("--model", metavar="NAME", help="a configured model to use")
    summarize.add_argument("--html", action="store_true", help="the input is HTML")
    summarize.add_argument(
        "--stream",
        action="store_true",
        help="print the summary as it is generated (JSON Lines with --json)",
    )
    summarize.add_argument("file", nargs="?", default="-", metavar="FILE", help="default: stdin")
    summarize.set_defaults(handler=_summarize)

    detect = commands.add_parser(
        "detect",
        parents=[common],
        help="detect the language of a text",
        description="Detect the language of a text.",
    )
    detect.add_argument("--max-results", type=_non_negative_int, metavar="N")
    detect.add_argument("file", nargs="?", default="-", metavar="FILE", help="default: stdin")
    detect.set_defaults(handler=_detect)

    models = commands.add_parser("models", help="list or download models")
    model_commands = models.add_subparsers(dest="models_command", metavar="COMMAND", required=True)
    models_list = model_commands.add_parser(
        "list", parents=[common], help="list the server's models and their state"
    )
    models_list.set_defaults(handler=_models_list)
    model_commands.add_parser(
        "pull",
        add_help=False,
        help="download models into the local cache (needs dragoman[server]; "
        "arguments pass through to the server's CLI)",
    )

    health = commands.add_parser(
        "health", parents=[common], help="check the server's health (exit 0 when SERVING)"
    )
    health.add_argument("--service", default="", help="a service name (default: the server)")
    health.set_defaults(handler=_health)

    commands.add_parser(
        "serve",
        add_help=False,
        help="run the server (needs dragoman[server]; arguments pass through, "
        "see `dragoman serve --help`)",
    )
    commands.add_parser(
        "quality",
        add_help=False,
        help="BLEU/chrF and ROUGE on test sets, against a server (--server, with TLS and API "
        "keys) or a config's models served in-process (needs dragoman[server,quality]; see "
        "`dragoman quality --help`)",
    )
    return parser


# --------------------------------------------------------------------------------------------
# Commands


def _read_input(path: str) -> str:
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            data: bytes | str = (
                sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
            )
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror or error}") from None
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{name} is not UTF-8 text") from None


def _print_json(value: Any) -> None:
    print(json.dumps(_plain(value), ensure_ascii=False, indent=2))


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _write_text(text: str) -> None:
    """Writes text exactly, with a final newline only if it lacks one."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _translate(args: argparse.Namespace) -> int:
    text = _read_input(args.file)
    kwargs: dict[str, Any] = {
        "source": args.source,
        "model": args.model,
        "mime_type": "text/html" if args.html else None,
        "glossary": args.glossary,
    }
    with client_from_arguments(args) as client:
        if args.stream:
            return _translate_stream(client, text, args, kwargs)
        [translation] = client.translate(text, args.to, **kwargs)
    if args.json:
        _print_json(translation)
    else:
        _write_text(translation.text)
    return EXIT_OK


def _translate_stream(
    client: Client, text: str, args: argparse.Namespace, kwargs: dict[str, Any]
) -> int:
    ends_with_newline = True
    with client.translate_stream(text, args.to, **kwargs) as stream:
        for chunk in stream:
            if args.json:
                sys.stdout.write(json.dumps(dataclasses.asdict(chunk), ensure_ascii=False) + "\n")
            elif chunk.text:
                sys.stdout.write(chunk.text)
                ends_with_newline = chunk.text.endswith("\n")
            sys.stdout.flush()
    if not ends_with_newline:
        _write_text("")
    return EXIT_OK


def _summarize(args: argparse.Namespace) -> int:
    text = _read_input(args.file)
    kwargs: dict[str, Any] = {
        "to": args.to,
        "source": args.source,
        "max_words": args.max_words,
        "length": args.length,
        "format": "bullets" if args.bullets else None,
        "model": args.model,
        "mime_type": "text/html" if args.html else None,
    }
    with client_from_arguments(args) as client:
        if args.stream:
            return _summarize_stream(client, text, args, kwargs)
        summary = client.summarize(text, **kwargs)
    if args.json:
        _print_json(summary)
    else:
        _write_text(summary.summary)
    return EXIT_OK


def _summarize_stream(
    client: Client, text: str, args: argparse.Namespace, kwargs: dict[str, Any]
) -> int:
    """The summary as generated; when the kept summary (shaped to the length and format asked
    for, wrappers removed) differs from what streamed, it follows after a rule line."""
    streamed = []
    with client.summarize_stream(text, **kwargs) as stream:
        for chunk in stream:
            if args.json:
                sys.stdout.write(json.dumps(dataclasses.asdict(chunk), ensure_ascii=False) + "\n")
            elif chunk.delta:
                sys.stdout.write(chunk.delta)
                streamed.append(chunk.delta)
            sys.stdout.flush()
            if chunk.summary is not None and not args.json:
                if "".join(streamed).strip() != chunk.summary.summary:
                    _write_text(("\n" if streamed else "") + "---")
                    _write_text(chunk.summary.summary)
                else:
                    _write_text("")
    return EXIT_OK


def _detect(args: argparse.Namespace) -> int:
    text = _read_input(args.file)
    with client_from_arguments(args) as client:
        scores = client.detect(text, max_results=args.max_results)
    if args.json:
        _print_json(scores)
    else:
        for score in scores:
            print(f"{score.language}\t{score.confidence:.3f}")
    return EXIT_OK


def _models_list(args: argparse.Namespace) -> int:
    with client_from_arguments(args) as client:
        models = client.models()
    if args.json:
        _print_json(models)
        return EXIT_OK
    rows = [("NAME", "TASK", "STATE", "BACKEND", "DEVICE", "LANGUAGES")]
    rows += [(m.name, m.task, m.state, m.backend, m.device, ",".join(m.languages)) for m in models]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, row[-1]]))
    for model in models:
        if model.error:
            print(f"{model.name}: {model.error}")
    return EXIT_OK


def _health(args: argparse.Namespace) -> int:
    with client_from_arguments(args) as client:
        status = client.health(args.service)
    if args.json:
        _print_json({"status": status})
    else:
        print(status)
    return EXIT_OK if status == "SERVING" else EXIT_ERROR
