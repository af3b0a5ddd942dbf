"""Text segmentation: articles -> paragraphs -> sentences -> model-sized pieces, and back.

Whitespace is never handed to a model: it is kept verbatim and put back where it was, so
`Document.render(Document.segments()) == text` for any input string. Pure stdlib + pysbd.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate

import pysbd
from pysbd.languages import LANGUAGE_CODES

__all__ = [
    "Document",
    "Paragraph",
    "Piece",
    "pack_segments",
    "split_document",
    "split_sentences",
]


@dataclass(frozen=True)
class Piece:
    """A span of the input: model text (translate=True) or verbatim whitespace (translate=False)."""

    text: str
    translate: bool


@dataclass(frozen=True)
class Paragraph:
    """One line of the input: its sentence pieces and the whitespace that follows it."""

    pieces: tuple[Piece, ...]
    separator: str


@dataclass(frozen=True)
class Document:
    """A segmented text; `render` puts model outputs back between the original whitespace."""

    leading: str
    paragraphs: tuple[Paragraph, ...]

    def segments(self) -> list[str]:
        """The texts of all translate=True pieces, in order."""
        return [p.text for para in self.paragraphs for p in para.pieces if p.translate]

    def paragraph_segment_counts(self) -> list[int]:
        """How many segments each paragraph has."""
        return [sum(p.translate for p in para.pieces) for para in self.paragraphs]

    def render_paragraphs(self, outputs: Sequence[str]) -> list[str]:
        """Like `render`, one string per paragraph: the first has `leading`, each its separator."""
        expected = sum(self.paragraph_segment_counts())
        if len(outputs) != expected:
            raise ValueError(f"expected {expected} outputs, got {len(outputs)}")
        it = iter(outputs)
        rendered = []
        for para in self.paragraphs:
            parts = [next(it) if p.translate else p.text for p in para.pieces]
            parts.append(para.separator)
            rendered.append("".join(parts))
        if rendered:
            rendered[0] = self.leading + rendered[0]
        return rendered

    def render(self, outputs: Sequence[str]) -> str:
        """The text with outputs[i] in place of segments()[i]; render(segments()) is the input."""
        rendered = self.render_paragraphs(outputs)
        return "".join(rendered) if rendered else self.leading


# What str.splitlines() treats as a line break; "\r\n" is covered as a run of whitespace.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
_WS_RUN = re.compile(r"\s+")
_NON_WS = re.compile(r"\S+")
_CLAUSE_BREAK = re.compile(r"(?<=[,;:—–])\s+")
_OPENING_PUNCT = "\"'«»“”„‘’‚‹›([{¿¡-–—"
# Closing quotes and brackets: one right after a sentence end belongs to that sentence.
_CLOSING_PUNCT = "\"'»”’›)]}"

# pysbd's abbreviation handling is quadratic in the text length: feed it bounded windows.
_PYSBD_WINDOW = 2000

# Languages pysbd lacks whose titles it would otherwise end a sentence on ("O Sr. | Silva").
_ABBREVIATIONS: dict[str, frozenset[str]] = {
    "pt": frozenset(
        """sr sra srs sras srta srtas dr dra drs dras prof profa profs profas eng enga arq
        exmo exma exmos exmas sto sta pe fr gen cel maj cap ten sgt cmdt dep sen pres min
        av r art arts pág págs p pp vol n nº n.º fig tel cf p.ex ex i.e e.g v.g aprox""".split()
    ),
}

# Dates with an abbreviated month ("Lisboa, 14 out. (Lusa) — ..."): the wire-copy dateline. Only
# after a day number, since "mar." alone is also the word "sea" ending a sentence.
_DATE_ABBREVIATION: dict[str, re.Pattern] = {
    "pt": re.compile(r"\b\d{1,2}\s+(jan|fev|mar|abr|mai|jun|jul|ago|set|out|nov|dez)\.$", re.I),
}

_segmenters: dict[str, pysbd.Segmenter] = {}
_segmenters_lock = threading.Lock()


def _primary(language: str) -> str:
    return language.strip().replace("_", "-").split("-", 1)[0].lower()


def _segmenter(language: str) -> pysbd.Segmenter:
    code = _primary(language)
    if code not in LANGUAGE_CODES:
        code = "en"
    seg = _segmenters.get(code)
    if seg is None:
        with _segmenters_lock:
            seg = _segmenters.setdefault(code, pysbd.Segmenter(language=code, clean=False))
    return seg


def _pysbd_sentences(seg: pysbd.Segmenter, text: str) -> list[str]:
    # Segmenter.segment() keeps the text on the shared instance (not thread-safe) and re-locates
    # every sentence by a regex scan of the whole text; its processor is per call and enough here.
    try:
        return [s for s in seg.processor(text).process() if isinstance(s, str)]
    except Exception:  # pysbd's regexes are not total; an unsplit paragraph is a safe answer
        return []


def _ends_in_window(seg: pysbd.Segmenter, text: str, start: int, stop: int) -> list[int]:
    """Sentence ends (absolute) found by pysbd in text[start:stop] that have text after them."""
    window = text[start:stop]
    ends = []
    pos = 0
    for sentence in _pysbd_sentences(seg, window):
        needle = sentence.strip()
        if not needle:
            continue
        found = window.find(needle, pos)
        if found < 0:  # pysbd altered the text: leave the rest of the window unsplit
            break
        pos = found + len(needle)
        ends.append(pos)
    return [start + e for e in ends if not window[e:].isspace() and e < len(window)]


def _raw_boundaries(seg: pysbd.Segmenter, text: str, start: int, end: int) -> list[int]:
    boundaries: list[int] = []
    pos = start
    while pos < end:
        stop = end
        if end - pos > _PYSBD_WINDOW:
            stop = pos + _PYSBD_WINDOW
            cut = max(text.rfind(" ", pos, stop), text.rfind("\t", pos, stop))
            if cut > pos:
                stop = cut
        ends = _ends_in_window(seg, text, pos, stop)
        if stop == end:
            boundaries.extend(ends)
            break
        # The window's last sentence may be cut short, so its start is judged again, with context.
        if len(ends) > 1:
            boundaries.extend(ends[:-1])
            pos = ends[-2]
        elif ends:
            boundaries.append(ends[0])
            pos = ends[0]
        else:  # no end within a whole window: skip on; that long sentence is split by tokens later
            pos = stop
        while pos < end and text[pos].isspace():
            pos += 1
    return boundaries


def _joins_next(
    sentence: str, following: str, abbreviations: frozenset[str], date: re.Pattern | None = None
) -> bool:
    head = following.lstrip(_OPENING_PUNCT)
    if head[:1].islower():
        return True
    if date is not None and date.search(sentence):
        return True
    if abbreviations and sentence.endswith("."):
        last = sentence.rsplit(None, 1)[-1].lstrip(_OPENING_PUNCT).lower()
        return last[:-1] in abbreviations
    return False


def _sentence_spans(text: str, start: int, end: int, language: str) -> list[tuple[int, int]]:
    """Sentences of text[start:end] (which has no outer whitespace) as absolute spans."""
    boundaries = _raw_boundaries(_segmenter(language), text, start, end)
    abbreviations = _ABBREVIATIONS.get(_primary(language), frozenset())
    date = _DATE_ABBREVIATION.get(_primary(language))
    spans: list[tuple[int, int]] = []
    s = start
    for b in boundaries:
        # pysbd may end a sentence before its closing quote ("antes.» Costa" -> "antes." and
        # "» Costa"): the quote stays with the sentence it closes.
        while s < b < end and text[b] in _CLOSING_PUNCT:
            b += 1
        if b <= s or b >= end:
            continue
        e = b
        nxt = b
        while nxt < end and text[nxt].isspace():
            nxt += 1
        if nxt >= end:
            continue
        if _joins_next(text[s:e], text[nxt : min(end, nxt + 8)], abbreviations, date):
            continue
        spans.append((s, e))
        s = nxt
    spans.append((s, end))
    return spans


def _paragraph_spans(text: str) -> tuple[int, list[tuple[int, int, int]]]:
    """(end of leading whitespace, [(start, end, separator end)]) of the paragraphs of text."""
    first = _NON_WS.search(text)
    if first is None:
        return len(text), []
    lead = first.start()
    paragraphs = []
    start = lead
    for m in _WS_RUN.finditer(text, lead):
        if m.end() == len(text):
            paragraphs.append((start, m.start(), m.end()))
            return lead, paragraphs
        if not _LINE_BREAKS.isdisjoint(m.group()):
            paragraphs.append((start, m.start(), m.end()))
            start = m.end()
    paragraphs.append((start, len(text), len(text)))
    return lead, paragraphs


_ZWJ = "\u200d"


def _clusters(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Approximate grapheme clusters of text[start:end], never cut before a mark or inside a ZWJ,
    flag, skin-tone or tag sequence."""
    spans: list[tuple[int, int]] = []
    cluster_start = start
    prev = ""
    lone_flag = False
    for i in range(start, end):
        ch = text[i]
        o = ord(ch)
        flag = 0x1F1E6 <= o <= 0x1F1FF
        joined = i > start and (
            unicodedata.category(ch) in ("Mn", "Mc", "Me")
            or ch == _ZWJ
            or prev == _ZWJ
            or 0x1F3FB <= o <= 0x1F3FF
            or 0xE0020 <= o <= 0xE007F
            or (flag and lone_flag)
            or (0xDC00 <= o <= 0xDFFF and 0xD800 <= ord(prev) <= 0xDBFF)
            or unicodedata.combining(prev) == 9
        )
        if not joined and i > start:
            spans.append((cluster_start, i))
            cluster_start = i
        lone_flag = flag and not (joined and lone_flag)
        prev = ch
    if end > start:
        spans.append((cluster_start, end))
    return spans


def _longest_fit(n: int, fits: Callable[[int], bool], guess: int) -> int:
    """Largest k in 1..n for which fits(k) was seen true, or 0; O(log) probes around guess."""
    g = min(max(guess, 1), n)
    if fits(g):
        lo, hi, step = g, n + 1, 1
        while lo < n:
            probe = min(lo + step, n)
            if not fits(probe):
                hi = probe
                break
            lo, step = probe, step * 2
    else:
        lo, hi, step = 0, g, 1
        while hi > 1:
            probe = max(hi - step, 1)
            if fits(probe):
                lo = probe
                break
            hi, step = probe, step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


_CLAUSE, _WORD, _CHAR = range(3)


class _Splitter:
    """Cuts spans of one text into pieces that fit, remembering every count it paid for."""

    def __init__(self, text: str, count_tokens: Callable[[str], int], max_tokens: int):
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        self.text = text
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.counts: dict[tuple[int, int], int] = {}

    def count(self, start: int, end: int) -> int:
        key = (start, end)
        n = self.counts.get(key)
        if n is None:
            n = self.counts[key] = self.count_tokens(self.text[start:end])
        return n

    def fit(self, start: int, end: int) -> list[tuple[int, int]]:
        """Spans covering the words of text[start:end] in order, each fitting max_tokens."""
        if self.count(start, end) <= self.max_tokens:
            return [(start, end)]
        return self._split(start, end, _CLAUSE)

    def _units(self, start: int, end: int, level: int) -> list[tuple[int, int]]:
        if level == _CLAUSE:
            units, s = [], start
            for m in _CLAUSE_BREAK.finditer(self.text, start, end):
                units.append((s, m.start()))
                s = m.end()
            units.append((s, end))
            return units
        if level == _WORD:
            return [m.span() for m in _NON_WS.finditer(self.text, start, end)]
        return _clusters(self.text, start, end)

    def _split(self, start: int, end: int, level: int) -> list[tuple[int, int]]:
        units = self._units(start, end, level)
        if len(units) <= 1:
            if level == _CHAR:
                return [(start, end)]  # one cluster that does not fit: emit it alone anyway
            return self._split(start, end, level + 1)
        unit_ends = [e for _, e in units]
        chars_per_token = (end - start) / max(self.count(start, end), 1)
        budget = self.max_tokens * chars_per_token
        out: list[tuple[int, int]] = []
        i = 0
        while i < len(units):
            first = units[i][0]

            def fits(k: int, i: int = i, first: int = first) -> bool:
                return self.count(first, units[i + k - 1][1]) <= self.max_tokens

            guess = bisect_right(unit_ends, first + budget, i) - i
            k = _longest_fit(len(units) - i, fits, guess)
            if k == 0 and level == _CHAR:
                out.append(units[i])  # one cluster that does not fit: emit it alone anyway
                i += 1
            elif k == 0:
                out.extend(self._split(*units[i], level + 1))
                i += 1
            else:
                out.append((first, units[i + k - 1][1]))
                i += k
        return out


def _pieces(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> tuple[Piece, ...]:
    pieces = []
    pos = start
    for s, e in spans:
        if s > pos:
            pieces.append(Piece(text[pos:s], False))
        pieces.append(Piece(text[s:e], True))
        pos = e
    if end > pos:
        pieces.append(Piece(text[pos:end], False))
    return tuple(pieces)


def split_document(
    text: str,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    language: str = "en",
    *,
    whole_paragraphs: bool = False,
) -> Document:
    """Paragraphs -> sentences (pysbd) -> pieces whose count_tokens(piece) <= max_tokens.

    `whole_paragraphs` (instruction models, which translate with context): a paragraph that fits
    is one piece; a longer one is its sentences packed greedily into pieces that fit.
    Text without any non-whitespace is one empty paragraph after `leading` ("" has none), so that
    render_paragraphs() always joins to render().
    """
    splitter = _Splitter(text, count_tokens, max_tokens)
    lead, paragraph_spans = _paragraph_spans(text)
    paragraphs = []
    for start, end, sep_end in paragraph_spans:
        inner = text[start:end]
        first, last = start + len(inner) - len(inner.lstrip()), start + len(inner.rstrip())
        if whole_paragraphs and first < last and splitter.count(first, last) <= max_tokens:
            spans = [(first, last)]  # whitespace around it stays Dragoman's
        else:
            spans = [
                piece
                for s, e in _sentence_spans(text, start, end, language)
                for piece in splitter.fit(s, e)
            ]
            if whole_paragraphs:
                spans = _pack(spans, splitter, max_tokens)
        paragraphs.append(Paragraph(_pieces(text, start, end, spans), text[end:sep_end]))
    if text and not paragraphs:
        paragraphs.append(Paragraph((), ""))
    return Document(text[:lead], tuple(paragraphs))


def pack_segments(
    text: str, count_tokens: Callable[[str], int], max_tokens: int, language: str = "en"
) -> list[str]:
    """For summarisation: whole sentences packed greedily, in order, into chunks of at most
    max_tokens (a chunk keeps the original whitespace between its sentences; paragraph breaks
    inside a chunk are kept as they are). Sentences longer than max_tokens are split as in
    split_document."""
    splitter = _Splitter(text, count_tokens, max_tokens)
    _, paragraph_spans = _paragraph_spans(text)
    units = [
        piece
        for start, end, _ in paragraph_spans
        for s, e in _sentence_spans(text, start, end, language)
        for piece in splitter.fit(s, e)
    ]
    return [text[s:e] for s, e in _pack(units, splitter, max_tokens)]


def _pack(
    units: list[tuple[int, int]], splitter: _Splitter, max_tokens: int
) -> list[tuple[int, int]]:
    """Consecutive spans packed greedily, in order, into spans of at most max_tokens."""
    # Counts of the parts are known already; their sum is a cheap first guess for each chunk.
    sums = list(accumulate((splitter.counts.get(u, max_tokens) for u in units), initial=0))
    chunks = []
    i = 0
    while i < len(units):
        first = units[i][0]

        def fits(k: int, i: int = i, first: int = first) -> bool:
            return splitter.count(first, units[i + k - 1][1]) <= max_tokens

        guess = bisect_right(sums, sums[i] + max_tokens, i + 1) - 1 - i
        k = max(_longest_fit(len(units) - i, fits, guess), 1)
        chunks.append((first, units[i + k - 1][1]))
        i += k
    return chunks


def split_sentences(text: str, language: str = "en") -> list[str]:
    """Sentences of one paragraph, exact substrings, no surrounding whitespace."""
    first = _NON_WS.search(text)
    if first is None:
        return []
    start = first.start()
    end = len(text.rstrip())
    return [text[s:e] for s, e in _sentence_spans(text, start, end, language)]
