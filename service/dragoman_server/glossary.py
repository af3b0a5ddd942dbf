"""Glossaries: terms whose translation is fixed, carried through a model as placeholder tokens.

Before translation every occurrence of a source term (whole words, case-sensitive, longest term
first at a position, leftmost, non-overlapping) is replaced by a placeholder such as `GLS3`; after
translation each placeholder is replaced by the required target (or the source term itself for a
do-not-translate entry, target ""). An upper-case letters-and-digits token is what MT models copy
most reliably (they treat it like an acronym or a product code), and the copy model copies it
exactly.

Placeholders cannot collide with the caller's text. Invariant: a placeholder is `PREFIX` + a
decimal number, where `PREFIX` is chosen per text (`free_prefix`) among strings of distinct
upper-case ASCII letters that occur nowhere in the text (nor in the strings passed as `avoid`).
Because the letters of `PREFIX` are distinct, `PREFIX` has no border (no proper prefix equal to a
suffix), so after substitution it cannot occur across the seam of a placeholder and the text
around it; and a whole-word term is never followed by a digit, so a placeholder's number cannot
run into digits of the text. Hence every occurrence of `PREFIX` in the protected text is one of
our placeholders, and `restore` touches nothing else: a `GLS1`, `GLS10000` or `<x1>` the caller
wrote comes back as written.

Matching runs in time linear in the text (plus the matches found) with an Aho-Corasick automaton
(pyahocorasick, a maintained C library): a regex alternation of thousands of terms backtracks term
by term at every position (20,000 terms over 100,000 characters took seconds).

On real Marian (OPUS-MT) models: the placeholder is usually copied, but the words around it are
translated without knowing the term, so agreement (gender, case, articles: "a GLS1" for "a
Comissão") may come out wrong, and a model now and then drops or inflects the token. A placeholder
that does not come back is not an applied entry: it is left out of `applied_glossary` (the output
checks flag it as `glossary_term_missing`). Terms inside HTML inline tags work; a term that spans a
tag boundary does not match, and the inline-tag placeholders themselves are never matched (`skip`).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import ahocorasick

__all__ = ["Glossary", "Protected", "free_prefix", "merge", "upper_runs"]

_WORD = re.compile(r"\w")
# Candidate prefix letters, "GLS" first (the scheme's historical prefix, known to copy well).
_ALPHABET = "GLS" + "".join(c for c in "ABCDEFHIJKMNOPQRTUVWXYZ")
_UPPER_RUN = re.compile(r"[A-Z]+")


def merge(
    *glossaries: Iterable[tuple[str, str]] | Mapping[str, str],
) -> tuple[tuple[str, str], ...]:
    """Entries of all glossaries, later ones taking precedence for the same source term."""
    merged: dict[str, str] = {}
    for g in glossaries:
        items = g.items() if isinstance(g, Mapping) else g
        for source, target in items:
            if source.strip():
                merged[source] = target
    return tuple(merged.items())


def upper_runs(texts: Iterable[str]) -> list[str]:
    """The runs of upper-case ASCII letters in `texts` (what a prefix must not be part of)."""
    return [run for text in texts for run in _UPPER_RUN.findall(text)]


def free_prefix(texts: Iterable[str], runs: Iterable[str] = ()) -> str:
    """The first string of distinct upper-case ASCII letters (3 letters, more if every 3-letter
    one is taken) that occurs in none of `texts` (nor in `runs`, from `upper_runs`). Linear in
    the texts' length: a text of n characters holds at most n strings of each length, so a free
    one is among the first n + 1 candidates."""
    runs = upper_runs(texts) + list(runs)
    for size in itertools.count(3):
        present = {run[i : i + size] for run in runs for i in range(len(run) - size + 1)}
        for letters in itertools.permutations(_ALPHABET, size):
            candidate = "".join(letters)
            if candidate not in present:
                return candidate
    raise AssertionError("unreachable")


@dataclass
class Protected:
    """A text with terms replaced by placeholders (`prefix` + number), and what each stands for."""

    text: str
    entries: dict[str, tuple[str, str]] = field(default_factory=dict)  # placeholder -> entry
    prefix: str = ""  # "": no placeholders (nothing matched)

    def _pattern(self) -> re.Pattern:
        return re.compile(re.escape(self.prefix) + r"\d+(?!\d)")

    def restore(
        self, translated: str, only: set[str] | None = None
    ) -> tuple[str, list[tuple[str, str]]]:
        """(text with placeholders replaced, entries applied in order of first use).

        An entry is applied when its term occurred in the text (it has a placeholder) and the
        placeholder came back. `only`: restore only these placeholders, leaving the others in
        place (for later hops).
        """
        if not self.entries:
            return translated, []
        applied: list[tuple[str, str]] = []

        def put_back(m: re.Match) -> str:
            token = m.group(0)
            entry = self.entries.get(token)
            if entry is None or (only is not None and token not in only):
                return token
            if entry not in applied:
                applied.append(entry)
            source, target = entry
            return target or source

        return self._pattern().sub(put_back, translated), applied

    def missing(self, translated: str, within: str | None = None) -> list[tuple[str, str]]:
        """Entries whose placeholder did not come back (`within`: only those of this piece of
        the protected text, such as one segment)."""
        if not self.entries:
            return []
        found = set(self._pattern().findall(translated))
        sent = self.entries if within is None else set(self._pattern().findall(within))
        return [e for t, e in self.entries.items() if t in sent and t not in found]


class Glossary:
    """A compiled set of (source term, target) entries."""

    def __init__(self, entries: Iterable[tuple[str, str]]):
        self.entries = dict(entries)
        self._automaton: ahocorasick.Automaton | None = None
        if self.entries:
            automaton = ahocorasick.Automaton()
            for term in self.entries:
                automaton.add_word(term, len(term))
            automaton.make_automaton()
            self._automaton = automaton
        # Targets go into the text at restore time: a prefix must not occur in them either.
        self._target_runs = upper_runs(self.entries.values())

    def __bool__(self) -> bool:
        return bool(self.entries)

    def find(self, text: str, skip: re.Pattern | None = None) -> list[tuple[int, int]]:
        """(start, end) of each term occurrence to replace: whole words (no word character just
        before or after), case-sensitive, the longest term at a position, leftmost first, not
        overlapping, none overlapping a match of `skip` (markup placeholders)."""
        if self._automaton is None:
            return []
        longest: dict[int, int] = {}  # start -> length of the longest whole-word term there
        n = len(text)
        for last, length in self._automaton.iter(text):
            start, end = last - length + 1, last + 1
            if length <= longest.get(start, 0):
                continue
            if start > 0 and _WORD.match(text, start - 1):
                continue
            if end < n and _WORD.match(text, end):
                continue
            longest[start] = length
        opaque = [m.span() for m in skip.finditer(text)] if skip is not None else []
        starts = [s for s, _ in opaque]
        found: list[tuple[int, int]] = []
        position = 0
        for start in sorted(longest):
            end = start + longest[start]
            if start < position:
                continue
            k = bisect.bisect_right(starts, start) - 1  # last opaque span starting at or before
            if (k >= 0 and opaque[k][1] > start) or (
                k + 1 < len(opaque) and opaque[k + 1][0] < end
            ):
                continue
            found.append((start, end))
            position = end
        return found

    def protect(
        self,
        text: str,
        first_id: int = 1,
        *,
        avoid: Iterable[str] = (),
        skip: re.Pattern | None = None,
    ) -> Protected:
        """Replace the terms with placeholders numbered from first_id.

        The prefix is absent from `text`, from every target of this glossary and from `avoid`
        (strings put into the text later, such as a later hop's glossary targets), so that a
        placeholder can only ever be one of ours (see the module docstring).
        """
        spans = self.find(text, skip)
        if not spans:
            return Protected(text)
        prefix = free_prefix(itertools.chain([text], avoid), self._target_runs)
        entries: dict[str, tuple[str, str]] = {}
        by_term: dict[str, str] = {}
        parts: list[str] = []
        position = 0
        for start, end in spans:
            term = text[start:end]
            token = by_term.get(term)
            if token is None:
                token = by_term[term] = f"{prefix}{first_id + len(by_term)}"
                entries[token] = (term, self.entries[term])
            parts.append(text[position:start])
            parts.append(token)
            position = end
        parts.append(text[position:])
        return Protected("".join(parts), entries, prefix)
