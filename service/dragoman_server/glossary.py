"""Glossaries: terms whose translation is fixed, carried through a model as placeholder tokens.

Before translation every occurrence of a source term (whole words, case-sensitive, longest term
first) is replaced by a placeholder such as `GLS3`; after translation each placeholder is replaced
by the required target (or the source term itself for a do-not-translate entry, target ""). An
upper-case letters-and-digits token is what MT models copy most reliably (they treat it like an
acronym or a product code), and the copy model copies it exactly.

On real Marian (OPUS-MT) models: the placeholder is usually copied, but the words around it are
translated without knowing the term, so agreement (gender, case, articles: "a GLS1" for "a
Comissão") may come out wrong, and a model now and then drops or inflects the token. A placeholder
that does not come back is not an applied entry: it is left out of `applied_glossary` and logged,
so callers can see the term was not enforced. Terms inside HTML inline tags work; a term that
spans a tag boundary does not match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Glossary", "Protected", "merge"]

_PLACEHOLDER = re.compile(r"GLS(\d+)(?!\d)")


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


@dataclass
class Protected:
    """A text with terms replaced by placeholders, and what each placeholder stands for."""

    text: str
    entries: dict[str, tuple[str, str]] = field(default_factory=dict)  # placeholder -> entry

    def restore(
        self, translated: str, only: set[str] | None = None
    ) -> tuple[str, list[tuple[str, str]]]:
        """(text with placeholders replaced, entries applied in order of first use).

        `only`: restore only these placeholders, leaving the others in place (for later hops).
        """
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

        return _PLACEHOLDER.sub(put_back, translated), applied

    def missing(self, translated: str) -> list[tuple[str, str]]:
        """Entries whose placeholder did not come back."""
        found = set(_PLACEHOLDER.findall(translated))
        return [e for t, e in self.entries.items() if t[3:] not in found]


class Glossary:
    """A compiled set of (source term, target) entries."""

    def __init__(self, entries: Iterable[tuple[str, str]]):
        self.entries = dict(entries)
        terms = sorted(self.entries, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in terms)) if terms else None
        )

    def __bool__(self) -> bool:
        return bool(self.entries)

    def protect(self, text: str, first_id: int = 1) -> Protected:
        """Replace the terms with placeholders numbered from first_id."""
        if self._pattern is None:
            return Protected(text)
        entries: dict[str, tuple[str, str]] = {}
        by_term: dict[str, str] = {}

        def swap(m: re.Match) -> str:
            term = m.group(0)
            token = by_term.get(term)
            if token is None:
                token = by_term[term] = f"GLS{first_id + len(by_term)}"
                entries[token] = (term, self.entries[term])
            return token

        return Protected(self._pattern.sub(swap, text), entries)
