"""`dragoman quality`: BLEU and chrF (sacrebleu) on a parallel test set and ROUGE (rouge-score)
on a summarisation set, against a Dragoman server.

It talks to the server through `dragoman.Client`, so `--server` reaches any server the client
does: TLS (`--tls`, `--ca-cert`, `--cert`/`--key` for mutual TLS) and API keys (`--api-key`, or
$DRAGOMAN_API_KEY). Without `--server` it serves the models of a config in-process on 127.0.0.1
(port 0) for the duration of the run. (The runtime checks of each generated segment are in
`output_checks`.)

Test sets come from files, or for translation from sacrebleu's own collection (downloaded on first
use, where the machine has internet: `--sacrebleu-set mtedx/test:pt-en`). File formats:
  translation: TSV, one pair a line: `source<TAB>reference` (UTF-8; `#` lines and blanks skipped)
  summaries:   JSONL, one object a line: {"text": "...", "summary": "..."}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dragoman.cli import add_connection_arguments, client_from_arguments

# A batch of test sentences on a CPU can take minutes; the client's 30 s default is too short.
DEFAULT_TIMEOUT = 600.0


# -- the command -----------------------------------------------------------------------------------


@dataclass
class Scores:
    name: str
    model: str
    size: int
    metrics: dict[str, float]
    seconds: float


def read_tsv(path: str | Path) -> tuple[list[str], list[str]]:
    sources, references = [], []
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{n}: expected source<TAB>reference")
        source, reference = line.split("\t", 1)
        sources.append(source.strip())
        references.append(reference.strip())
    return sources, references


def read_jsonl(path: str | Path) -> tuple[list[str], list[str]]:
    texts, summaries = [], []
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            texts.append(row["text"])
            summaries.append(row["summary"])
        except (ValueError, KeyError) as exc:
            raise ValueError(
                f"{path}:{n}: expected {{'text': ..., 'summary': ...}}: {exc}"
            ) from None
    return texts, summaries


def read_sacrebleu(spec: str) -> tuple[str, list[str], list[str]]:
    """`NAME:PAIR` (e.g. `mtedx/test:pt-en`, `wmt20:de-en`) -> (pair, sources, references), from
    sacrebleu's own test sets: downloaded into $SACREBLEU (default ~/.sacrebleu) the first time,
    read from there afterwards."""
    from sacrebleu.dataset import DATASETS
    from sacrebleu.utils import get_reference_files, get_source_file

    name, _, pair = spec.rpartition(":")
    if not name or not pair:
        raise ValueError(
            f"--sacrebleu-set must be NAME:PAIR such as mtedx/test:pt-en, got {spec!r}"
        )
    if name not in DATASETS:
        raise ValueError(
            f"--sacrebleu-set: unknown test set {name!r}; sacrebleu has: {', '.join(DATASETS)}"
        )
    if pair not in DATASETS[name].langpairs:
        pairs = ", ".join(p for p in DATASETS[name].langpairs if "-" in p)
        raise ValueError(f"--sacrebleu-set: {name} has no pair {pair!r}; it has: {pairs}")
    try:
        source_file = get_source_file(name, pair)
        reference_file = get_reference_files(name, pair)[0]
    except SystemExit:  # sacrebleu exits on a failed or corrupt download
        raise OSError(f"--sacrebleu-set: could not download {name} {pair}") from None
    except OSError as exc:
        raise OSError(
            f"--sacrebleu-set: could not download {name} {pair} ({exc}); without internet, "
            "use --translation-set with a local file"
        ) from None
    sources = Path(source_file).read_text("utf-8").splitlines()
    references = Path(reference_file).read_text("utf-8").splitlines()
    if len(sources) != len(references):
        raise ValueError(f"--sacrebleu-set: {name} {pair}: sources and references differ in length")
    return pair, sources, references


def translation_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    import sacrebleu

    return {
        "bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2),
    }


def rouge_scores(summaries: list[str], references: list[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeLsum": 0.0}
    for hyp, ref in zip(summaries, references, strict=True):
        # rougeLsum splits sentences on newlines.
        scores = scorer.score(ref.replace(". ", ".\n"), hyp.replace(". ", ".\n"))
        for key in totals:
            totals[key] += scores[key].fmeasure
    n = max(len(summaries), 1)
    return {key: round(100 * value / n, 2) for key, value in totals.items()}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dragoman quality",
        description="BLEU/chrF on a parallel test set and ROUGE on a summarisation set, "
        "against a running server (--server) or the models of a config served in-process.",
    )
    p.add_argument("--config", help="TOML config (default: $DRAGOMAN_CONFIG, else built-in)")
    p.add_argument(
        "--translation-set",
        action="append",
        default=[],
        metavar="PAIR=FILE.tsv",
        help="parallel test set, source<TAB>reference per line, e.g. pt-en=tests/data/quality/pt-en.tsv",
    )
    p.add_argument(
        "--sacrebleu-set",
        action="append",
        default=[],
        metavar="NAME:PAIR",
        help="one of sacrebleu's own test sets, downloaded on first use (needs internet), "
        "e.g. mtedx/test:pt-en or wmt20:de-en",
    )
    p.add_argument(
        "--summary-set",
        action="append",
        default=[],
        metavar="LANG=FILE.jsonl",
        help='summarisation set, {"text":..., "summary":...} per line, e.g. en=summaries.jsonl',
    )
    p.add_argument("--model", help="a configured model name to use instead of the router's choice")
    p.add_argument("--limit", type=int, default=0, help="use only the first N items of each set")
    p.add_argument("--batch", type=int, default=16, help="texts per Translate call")
    p.add_argument("--max-words", type=int, default=60, help="summary length bound")
    p.add_argument("--json", dest="json_out", help="write the results as JSON to this file")
    connection = p.add_argument_group("a running server (default: one started in-process)")
    connection.add_argument(
        "--server", metavar="HOST:PORT", help="use a running server instead of starting one"
    )
    add_connection_arguments(connection, timeout=DEFAULT_TIMEOUT)
    return p


def _split_arg(value: str, what: str) -> tuple[str, str]:
    if "=" not in value:
        raise SystemExit(f"dragoman quality: {what} must be KEY=FILE, got {value!r}")
    key, path = value.split("=", 1)
    return key.strip(), path


def _translation_sets(args: argparse.Namespace):
    """(label, pair, sources, references) for each --translation-set and --sacrebleu-set."""
    for spec in args.translation_set:
        pair, path = _split_arg(spec, "--translation-set")
        yield (Path(path).name, pair, *read_tsv(path))
    for spec in args.sacrebleu_set:
        yield (f"sacrebleu {spec.rpartition(':')[0]}", *read_sacrebleu(spec))


def _run(args: argparse.Namespace, client) -> list[Scores]:
    results: list[Scores] = []
    for label, pair, sources, references in _translation_sets(args):
        source_lang, target_lang = pair.split("-", 1)
        if args.limit:
            sources, references = sources[: args.limit], references[: args.limit]
        started = time.perf_counter()
        hypotheses: list[str] = []
        models: set[str] = set()
        for i in range(0, len(sources), args.batch):
            for t in client.translate(
                sources[i : i + args.batch],
                to=target_lang,
                source=source_lang,
                model=args.model or None,
            ):
                hypotheses.append(t.text)
                models.add("+".join(t.models))
        results.append(
            Scores(
                f"translation {pair} ({label})",
                ",".join(sorted(models)),
                len(sources),
                translation_scores(hypotheses, references),
                time.perf_counter() - started,
            )
        )
    for spec in args.summary_set:
        language, path = _split_arg(spec, "--summary-set")
        texts, references = read_jsonl(path)
        if args.limit:
            texts, references = texts[: args.limit], references[: args.limit]
        started = time.perf_counter()
        summaries, models = [], set()
        for text in texts:
            response = client.summarize(
                text, source=language, max_words=args.max_words, model=args.model or None
            )
            summaries.append(response.summary)
            models.add("+".join(response.models))
        results.append(
            Scores(
                f"summaries {language} ({Path(path).name})",
                ",".join(sorted(models)),
                len(texts),
                rouge_scores(summaries, references),
                time.perf_counter() - started,
            )
        )
    return results


def format_table(results: list[Scores]) -> str:
    rows = [("test set", "model", "n", "scores", "seconds")]
    for r in results:
        metrics = "  ".join(f"{k} {v:.2f}" for k, v in r.metrics.items())
        rows.append((r.name, r.model, str(r.size), metrics, f"{r.seconds:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    """`dragoman quality`: the exit code (0 ok, 2 bad arguments or data, 1 failure)."""
    args = _parser().parse_args(argv)
    if not (args.translation_set or args.sacrebleu_set or args.summary_set):
        print(
            "dragoman quality: give --translation-set, --sacrebleu-set and/or --summary-set",
            file=sys.stderr,
        )
        return 2
    from dragoman import DragomanError

    try:
        if args.server:
            with client_from_arguments(args, args.server) as client:
                results = _run(args, client)
        else:
            from .errors import ConfigError
            from .server import BackgroundServer
            from .settings import load_config

            try:
                config = load_config(args.config, overrides={"host": "127.0.0.1", "port": 0})
            except ConfigError as exc:
                print(f"dragoman quality: {exc}", file=sys.stderr)
                return 2
            with BackgroundServer(config) as server:
                if not server.ready:
                    print("dragoman quality: no model could be loaded", file=sys.stderr)
                    return 1
                with client_from_arguments(args, server.address) as client:
                    results = _run(args, client)
    except DragomanError as exc:  # the service refused or failed
        print(f"dragoman quality: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError, TypeError) as exc:  # bad files, sets or connection arguments
        print(f"dragoman quality: {exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps([r.__dict__ for r in results], indent=2, ensure_ascii=False) + "\n", "utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
