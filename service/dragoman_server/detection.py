"""Language detection with py3langid (offline, ~0.5 s to load, microseconds per sentence),
restricted to the languages a server can serve.

py3langid knows ~140 languages. On a short headline the best of them is often a neighbour of the
language it is written in (Galician, Extremaduran or Nigerian Pidgin for Portuguese and English
headlines), so detection over every language refused texts the server could translate. Here the
candidates are the languages the configuration names (plus the request's target): the ranking is
py3langid's over all its languages, renormalised over the candidates. That gives the numbers
py3langid's own `set_languages` would give, without mutating its identifier, which is one object
shared by every server in the process (so each call may have its own candidates, thread-safely).

A language outside the candidates still counts when py3langid is sure of it (FOREIGN): a German
paragraph sent to a pt-en server is refused as German, not translated as the likelier of pt/en.

Thresholds measured on tests/data/headlines.tsv (short news headlines, 3-7 words: 36 pt, 36 en,
12 es, 12 fr, and 10 de + 10 it that the configurations below do not serve), see
tests/test_detection.py which checks these figures:
- Restricted to {pt, en}: 72/72 pt and en headlines detected right (over all ~140 languages, 7 of
  them had another language on top, 3 of them under 0.5 and so refused). Lowest restricted
  confidence of a right answer 0.55.
- Restricted to {pt, en, es, fr}: 93/96 right; the 3 wrong are English headlines taken for French
  at 0.45-0.55; the lowest right answers are 0.34 (pt) and 0.42 (en).
- Unrestricted confidence of a non-candidate on top, for headlines in a served language: at most
  0.55 (gl for pt, pcm for en); for de/it/es/fr headlines the server does not serve: 0.16-0.995,
  median ~0.9. FOREIGN = 0.7 refuses none of the served headlines and 28/44 (pt-en server) and
  17/20 (pt-en-es-fr server) of the unserved ones; three sentences of de or it score over 0.99.
- CONFIDENT = 0.5 (the best candidate must outweigh all the others together): refuses none of the
  pt-en headlines (with two candidates only a tie is refused), and with four candidates
  refuses 3/96 (2 of them right, 0.34 and 0.42), keeping 2 of the 3 wrong ones (0.51, 0.55). A
  higher threshold buys little: at 0.6, 0 wrong but 6/96 refused.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from py3langid import langid

from .languages import base

# The best candidate must have more than this share of the candidates' probability (a tie, as for
# a text with nothing py3langid can read, such as emoji alone, is not a detection).
CONFIDENT = 0.5
# A language outside the candidates this sure is taken as detected (and so refused).
FOREIGN = 0.7


@dataclass(frozen=True)
class LanguageScore:
    """A candidate language and its probability."""

    language: str
    confidence: float


@dataclass(frozen=True)
class Detection:
    """What a text was found to be written in, among the candidates and outside them."""

    best: LanguageScore | None  # the likeliest candidate (None: no candidate is possible)
    foreign: LanguageScore | None  # a non-candidate py3langid is sure of (FOREIGN), if any

    @property
    def reliable(self) -> bool:
        return self.foreign is None and self.best is not None and self.best.confidence > CONFIDENT


@functools.cache
def _identifier() -> langid.LanguageIdentifier:
    path = os.path.join(langid.MODEL_DIR, langid.MODEL_FILE)
    return langid.LanguageIdentifier.from_model_file(path, norm_probs=True)


def load() -> None:
    """Load the model now (at start-up) rather than on the first request."""
    _identifier()


def configured_languages(models: Iterable) -> frozenset[str]:
    """Every language a configuration names: translation sources and targets, summarisation
    languages (targets too, so that a text in one is found to be in it, and refused with "no
    route" when it cannot be translated, rather than taken for the likeliest source)."""
    found: set[str] = set()
    for m in models:
        if m.task == "translation":
            for source, target in m.pairs:
                found.update((source, target))
        else:
            found.update(m.languages)
    return frozenset(found)


def _labels(candidates: Collection[str]) -> frozenset[str]:
    """py3langid labels of the candidates (by primary subtag; ones it does not know dropped)."""
    known = set(_identifier().labels)
    return frozenset(code for code in map(base, candidates) if code in known)


def _ranked(text: str, candidates: Collection[str] | None) -> tuple[list, list]:
    """(ranking over every language, ranking over the candidates renormalised)."""
    ranked = _identifier().rank(text)
    if candidates is None:
        return ranked, ranked
    labels = _labels(candidates)
    if not labels:  # nothing py3langid knows: all it can say is over every language
        return ranked, ranked
    served = [(language, p) for language, p in ranked if language in labels]
    total = sum(p for _, p in served)
    if total <= 0:  # every candidate underflowed: the text is plainly something else
        return ranked, []
    return ranked, [(language, p / total) for language, p in served]


def _score(language: str, p: float) -> LanguageScore:
    return LanguageScore(language, round(float(p), 4))


def detect(
    text: str, max_results: int = 3, candidates: Collection[str] | None = None
) -> list[LanguageScore]:
    """Candidate languages, most likely first (`candidates` None: every language py3langid
    knows)."""
    ranked, served = _ranked(text, candidates)
    return [_score(language, p) for language, p in (served or ranked)[: max(1, max_results)]]


def identify(text: str, candidates: Collection[str]) -> Detection:
    """The likeliest candidate, and any language outside the candidates that is a sure thing."""
    ranked, served = _ranked(text, candidates)
    top_language, top_p = ranked[0]
    foreign = None
    if top_p >= FOREIGN and (not served or top_language not in {s for s, _ in served}):
        foreign = _score(top_language, top_p)
    return Detection(_score(*served[0]) if served else None, foreign)
