"""Runtime output checks: each generated segment is compared with its source before it is used.

A check flags; it does not edit. A flagged segment is generated once more with stricter
generation parameters (`retry_params`), the better of the two outputs is kept, the flags go back
to the caller (`OutputFlag`, in `Translation.flags` and in the stream), and a flagged output is
never cached. Checks compare like with like: source and output go through the same tokenisation
(`tokens`: words, numbers and punctuation marks, case-folded, every kind of whitespace a mere
separator), so a faithful output (the copy model's, which is its input) can never be flagged.

The checks:

- `repetition`: the output repeats an n-gram (n <= 6 tokens) three or more times in a row, more
  times than the source repeats any n-gram ("the country the country the country" from a source
  with no such run; "1 000 000 000" or "sim, sim, sim" repeat in the source too, so their
  translations may). Regenerated with `no_repeat_ngram_size` and `repetition_penalty`; if the
  output still loops, the invented repeats (and only they: whole copies of the repeated n-gram
  beyond what the source has) are cut.
- `length_ratio`: the output has more than MAX_RATIO times the source's non-space characters
  plus MAX_EXTRA (a runaway generation), or nothing although the source has letters or digits.
  Regenerated like a repetition; never cut.
- `numbers_mismatch`: a number of the source (digits, figures with their separators, dates,
  percentages, amounts) does not appear in the output. Separators are normalised: "1.000,5" and
  "1,000.5", "1 000 000" (no-break spaces) and "1,000,000" are the same number. Digits glued to
  letters before them (A320, a placeholder's GLS1) are codes, not numbers. Regenerated with beam
  search; never edited.
- `glossary_term_missing`: a glossary placeholder of the segment did not come back (the data
  plane checks it with the glossary's own placeholder pattern, see `glossary.Protected`); the
  term is then not in the output and not reported as applied. Never edited.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from .engines.base import Generated, GenerationParams

__all__ = [
    "GLOSSARY_TERM_MISSING",
    "KINDS",
    "LENGTH_RATIO",
    "NUMBERS_MISMATCH",
    "REPETITION",
    "CheckedOutput",
    "Finding",
    "OutputFlag",
    "check",
    "choose",
    "cut_repetition",
    "retry_params",
    "unregenerated",
]

REPETITION = "repetition"
LENGTH_RATIO = "length_ratio"
NUMBERS_MISMATCH = "numbers_mismatch"
GLOSSARY_TERM_MISSING = "glossary_term_missing"
# An instruction model's preamble, quotes, code fence or note, removed by rule (prompts.unwrap).
WRAPPER_REMOVED = "wrapper_removed"
# Line breaks an instruction model put into a one-line unit, joined with spaces: the text's line
# breaks are Dragoman's to keep, each unit is one line.
LINE_BREAKS_JOINED = "line_breaks_joined"
KINDS = (
    REPETITION,
    LENGTH_RATIO,
    NUMBERS_MISMATCH,
    GLOSSARY_TERM_MISSING,
    WRAPPER_REMOVED,
    LINE_BREAKS_JOINED,
)

MAX_RATIO = 3
MAX_EXTRA = 20
MAX_NGRAM = 6
MIN_REPEATS = 3

# Regeneration knobs (see retry_params).
RETRY_NO_REPEAT_NGRAM = 4
RETRY_REPETITION_PENALTY = 1.2
RETRY_BEAMS = 4

# Words (letters, digits, marks, underscore) or single punctuation/symbol characters.
_TOKEN = re.compile(r"\w+|[^\w\s]")
# Digits glued to letters before them are part of a code or a placeholder (A320, GLS1, <x1>),
# not a number: placeholders have their own check, and their digits mean nothing to a reader.
_DIGITS = re.compile(r"(?<!\w)\d+")
# A figure: digit groups joined by group or decimal separators (. , ' ’ and the no-break, narrow
# no-break, thin and plain spaces before a group of exactly three digits).
_FIGURE = re.compile(r"(?<!\w)\d+(?:(?:[.,'’]|[ \u00a0\u202f\u2009](?=\d{3}(?!\d)))\d+)*")


@dataclass(frozen=True)
class Finding:
    """What a check found in one output."""

    kind: str
    detail: str


@dataclass(frozen=True)
class OutputFlag:
    """A check that fired on one segment, as reported to the caller.

    `segment_index`: the segment's index within its text (segments in text order, from 0);
    `regenerated`: the segment was generated a second time with stricter parameters.
    """

    kind: str
    detail: str
    regenerated: bool = False
    segment_index: int = 0


@dataclass(frozen=True)
class CheckedOutput(Generated):
    """A generated segment with the flags its checks raised (segment_index 0: the data plane
    sets each flag's index within the text)."""

    flags: tuple[OutputFlag, ...] = ()


def tokens(text: str) -> list[str]:
    """The tokens both sides are compared on: NFKC, case-folded; whitespace of any kind only
    separates."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def _longest_run(words: list[str]) -> tuple[int, int, int]:
    """(repeats, start, n) of the longest run of an n-gram repeated back to back (repeats >= 1).

    Only n-grams with a letter count: digit groups and punctuation ("1,000,000,000" for
    "1000000000") repeat by nature, and cutting them would change a number."""
    best = (1, 0, 1)
    lettered = [any(c.isalpha() for c in w) for w in words]
    for n in range(1, MAX_NGRAM + 1):
        i = 0
        while i + 2 * n <= len(words):
            if not any(lettered[i : i + n]):
                i += 1
                continue
            k = 1
            while words[i + k * n : i + (k + 1) * n] == words[i : i + n]:
                k += 1
            if k > best[0]:
                best = (k, i, n)
            i += max(1, (k - 1) * n) if k > 1 else 1
    return best


def _repetition(source: str, output: str) -> Finding | None:
    out_words = tokens(output)
    repeats, start, n = _longest_run(out_words)
    if repeats < MIN_REPEATS:
        return None
    source_repeats = _longest_run(tokens(source))[0]
    if repeats <= source_repeats:
        return None
    gram = " ".join(out_words[start : start + n])
    return Finding(
        REPETITION,
        f"{gram!r} repeated {repeats} times in a row (the source repeats nothing more than "
        f"{source_repeats} times)",
    )


def _visible(text: str) -> int:
    return sum(not c.isspace() for c in text)


def _length(source: str, output: str) -> Finding | None:
    src, out = _visible(source), _visible(output)
    if out > MAX_RATIO * src + MAX_EXTRA:
        return Finding(LENGTH_RATIO, f"{out} characters out for {src} in")
    if out == 0 and any(c.isalnum() for c in source):
        return Finding(LENGTH_RATIO, f"empty output for {src} characters in")
    return None


def _numbers(text: str) -> tuple[Counter, list[frozenset[str]]]:
    """Two views of the numbers of a text: its digit runs (leading zeros dropped: "05" of a date
    is "5" in words), and its figures, each as the values it can stand for (`_values`)."""
    text = unicodedata.normalize("NFKC", text)
    runs = Counter(_ascii_digits(m).lstrip("0") or "0" for m in _DIGITS.findall(text))
    return runs, [_values(m) for m in _FIGURE.findall(text)]


def _ascii_digits(digits: str) -> str:
    return "".join(str(unicodedata.digit(c)) for c in digits)


def _value(integer: str, fraction: str) -> str:
    integer, fraction = integer.lstrip("0") or "0", fraction.rstrip("0")
    return f"{integer}.{fraction}" if fraction else integer


def _values(figure: str) -> frozenset[str]:
    """What a figure can mean, separators read either way: "1.000,5" and "1,000.5" are 1000.5;
    "1.200" is 1200 or 1.2; "3,5" is 3.5 (a group has three digits); "1 000 000" is 1000000."""
    groups = [_ascii_digits(g) for g in re.split(r"\D", figure)]
    if len(groups) == 1:
        return frozenset({_value(groups[0], "")})
    separators = re.sub(r"\d", "", figure)
    values = set()
    if all(len(g) == 3 for g in groups[1:]):  # every separator groups thousands
        values.add(_value("".join(groups), ""))
    if separators[-1] in ".," and all(len(g) == 3 for g in groups[1:-1]):  # the last is decimal
        values.add(_value("".join(groups[:-1]), groups[-1]))
    return frozenset(values or {_value("".join(groups), "")})


def _unmatched(source: list[frozenset[str]], output: list[frozenset[str]]) -> list[str]:
    """Source figures no output figure can stand for (each output figure used once)."""
    free = list(output)
    missing = []
    for values in source:
        match = next((i for i, other in enumerate(free) if values & other), None)
        if match is None:
            missing.append(min(values, key=len))
        else:
            free.pop(match)
    return missing


def _numbers_check(source: str, output: str) -> Finding | None:
    source_runs, source_figures = _numbers(source)
    if not source_runs:
        return None
    out_runs, out_figures = _numbers(output)
    # Either view may differ by separators alone (1000000 / 1 000 000; 2023 300 / 2023, 300):
    # a number is missing only when both views miss something.
    if not (source_runs - out_runs):
        return None
    missing = _unmatched(source_figures, out_figures)
    if not missing:
        return None
    shown = ", ".join(missing)
    return Finding(NUMBERS_MISMATCH, f"numbers of the source missing from the output: {shown}")


def check(source: str, output: str) -> list[Finding]:
    """Every finding on one generated segment (empty: nothing to say)."""
    found = [_repetition(source, output), _length(source, output), _numbers_check(source, output)]
    return [f for f in found if f is not None]


def retry_params(params: GenerationParams, findings: list[Finding]) -> GenerationParams:
    """Stricter parameters for the one regeneration of a flagged segment: no repeated 4-grams
    and a repetition penalty against loops, beam search against lost or altered numbers."""
    kinds = {f.kind for f in findings}
    changes: dict = {}
    if kinds & {REPETITION, LENGTH_RATIO}:
        changes.update(
            no_repeat_ngram_size=RETRY_NO_REPEAT_NGRAM,
            repetition_penalty=RETRY_REPETITION_PENALTY,
        )
    if NUMBERS_MISMATCH in kinds or not changes:
        changes["num_beams"] = RETRY_BEAMS
    return dataclasses.replace(params, **changes)


def choose(
    source: str, first: Generated, findings: list[Finding], second: Generated
) -> CheckedOutput:
    """The output to use after a regeneration, with its flags: the regenerated one unless it has
    more findings than the first; the flags say which checks fired on the first and whether the
    kept output still fails them. A loop still there is cut (`cut_repetition`)."""
    again = check(source, second.text)
    kept, remaining = (second, again) if len(again) <= len(findings) else (first, findings)
    text = kept.text
    if any(f.kind == REPETITION for f in remaining):
        text = cut_repetition(source, text)
    still = {f.kind for f in remaining}
    flags = [
        OutputFlag(
            f.kind,
            f.detail
            + (
                "; still so after regeneration"
                if f.kind in still
                else "; the regenerated output passes"
            ),
            regenerated=True,
        )
        for f in findings
    ]
    flags += [
        OutputFlag(f.kind, f.detail + " (after regeneration)", regenerated=True)
        for f in again
        if kept is second and f.kind not in {g.kind for g in findings}
    ]
    return CheckedOutput(
        text,
        first.input_tokens + second.input_tokens,
        first.output_tokens + second.output_tokens,
        tuple(flags),
    )


def unregenerated(first: Generated, findings: list[Finding]) -> CheckedOutput:
    """The first output as it is, flagged, when it could not be generated again."""
    flags = tuple(OutputFlag(f.kind, f.detail + "; not regenerated") for f in findings)
    return CheckedOutput(first.text, first.input_tokens, first.output_tokens, flags)


def cut_repetition(source: str, output: str) -> str:
    """The output without the copies of a looping n-gram beyond what the source repeats.

    Only whole repeated copies go (from the end of the last copy kept to the end of the run), so
    nothing else of the output changes, whitespace included; an output whose repetition does not
    exceed the source's is returned as it is.
    """
    allowed = max(1, _longest_run(tokens(source))[0])
    for _ in range(100):  # each pass removes one run; bounded for safety
        spans = [m.span() for m in _TOKEN.finditer(output)]
        words = tokens(output)
        if len(words) != len(spans):  # NFKC changed the token count: do not guess, keep it
            return output
        repeats, start, n = _longest_run(words)
        if repeats < MIN_REPEATS or repeats <= allowed:
            return output
        keep_end = spans[start + allowed * n - 1][1]
        run_end = spans[start + repeats * n - 1][1]
        output = output[:keep_end] + output[run_end:]
    return output
