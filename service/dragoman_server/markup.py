"""HTML for translation: split a page or fragment into translatable blocks and put it back together.

Parsed with the stdlib `html.parser.HTMLParser` (convert_charrefs=False), never with regexes. Every
parser event is kept as the exact slice of the input it came from, so `render(texts())` gives back
the input byte for byte, entities, comments, odd whitespace and malformed bits included.

- Blocks: runs of text and *inline* elements (a, em, strong, span...) between block-level tags (p,
  div, li, h1-h6, br, td, title...). A block is one unit of translation, so a sentence that holds a
  link or an emphasis is translated as one sentence.
- Inline tags are carried through the model as short XML-like placeholders: `<x3>`..`</x3>` for an
  element, `<x4/>` for a void or protected inline element (img, code, translate="no" spans,
  comments). This is how Google's and DeepL's HTML modes work: the model sees the sentence with
  its markup, so for a real model the tags follow the words they wrap, even when the word order
  changes. A placeholder the model lost is put back at the same relative position in the block
  (for a copy model that is the same position); unknown ones it invented are dropped.
- Left alone (part of the skeleton, never sent to a model): script, style, code, pre, textarea,
  svg, math, noscript, template, and any element with translate="no" or class "notranslate".
- Entities: the model sees the decoded text; on the way back each character that was written as an
  entity in the block is written the same way again (the n-th occurrence as the n-th was spelt),
  `<` and `&` that did not come from the input are escaped.
- Attribute values (title, alt) are kept as they are: not translated.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["HtmlDocument", "parse_html", "text_content"]

INLINE = frozenset(
    """a abbr acronym b bdi bdo big cite data del dfn em font i img ins kbd label mark q s samp
    small span strike strong sub sup time tt u var wbr""".split()
)
SKIP = frozenset("script style code pre textarea svg math noscript template kbd samp".split())
VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr keygen".split()
)
_PLACEHOLDER = re.compile(r"<(/?)x(\d+)(/?)>")


@dataclass
class _Event:
    kind: str  # text | start | end | startend | other
    start: int
    tag: str = ""
    attrs: list = field(default_factory=list)
    raw: str = ""


class _Tokenizer(HTMLParser):
    def __init__(self, source: str):
        super().__init__(convert_charrefs=False)
        self.events: list[_Event] = []
        self._line_starts = [0] + [i + 1 for i, c in enumerate(source) if c == "\n"]

    def _add(self, kind: str, tag: str = "", attrs=None) -> None:
        line, col = self.getpos()
        self.events.append(_Event(kind, self._line_starts[line - 1] + col, tag, attrs or []))

    def handle_starttag(self, tag, attrs):
        self._add("start", tag, attrs)

    def handle_startendtag(self, tag, attrs):
        self._add("startend", tag, attrs)

    def handle_endtag(self, tag):
        self._add("end", tag)

    def handle_data(self, data):
        self._add("text")

    def handle_entityref(self, name):
        self._add("text")

    def handle_charref(self, name):
        self._add("text")

    def handle_comment(self, data):
        self._add("other")

    def handle_decl(self, decl):
        self._add("other")

    def handle_pi(self, data):
        self._add("other")

    def unknown_decl(self, data):
        self._add("other")


def _events(source: str) -> list[_Event]:
    parser = _Tokenizer(source)
    parser.feed(source)
    parser.close()
    events = parser.events
    if not events or events[0].start != 0:
        events.insert(0, _Event("other", 0))
    # Raw text of each event: up to the next event's start (exact slices that tile the input).
    merged: list[_Event] = []
    for i, event in enumerate(events):
        end = events[i + 1].start if i + 1 < len(events) else len(source)
        if end < event.start:  # never expected; keep tiling exact anyway
            end = event.start
        event.raw = source[event.start : end]
        if event.raw or event is events[-1]:
            merged.append(event)
    return merged


def _protected(tag: str, attrs: list) -> bool:
    if tag in SKIP:
        return True
    for name, value in attrs:
        if name == "translate" and (value or "").strip().lower() == "no":
            return True
        if name == "class" and "notranslate" in (value or "").split():
            return True
    return False


@dataclass
class _Block:
    """Translatable text with placeholders, and how to turn a translation of it back into HTML."""

    text: str
    tags: dict[str, str]  # placeholder -> raw html
    order: list[tuple[str, float]]  # placeholders in source order, with relative position
    spellings: dict[str, list[str]]  # char -> how each occurrence was written in the input

    def render(self, translated: str) -> str:
        parts: list[tuple[str, str]] = []  # ("text", decoded) | ("tag", placeholder)
        pos = 0
        seen: set[str] = set()
        for m in _PLACEHOLDER.finditer(translated):
            parts.append(("text", translated[pos : m.start()]))
            token = m.group(0)
            if token in self.tags and token not in seen:
                parts.append(("tag", token))
                seen.add(token)
            pos = m.end()
        parts.append(("text", translated[pos:]))
        missing = [(t, r) for t, r in self.order if t not in seen]
        if missing:
            parts = _insert_missing(parts, missing)
        counters: dict[str, int] = {}
        out = []
        for kind, value in parts:
            out.append(self.tags[value] if kind == "tag" else self._encode(value, counters))
        return "".join(out)

    def _encode(self, text: str, counters: dict[str, int]) -> str:
        out = []
        for ch in text:
            spelt = self.spellings.get(ch)
            if spelt:
                k = counters.get(ch, 0)
                counters[ch] = k + 1
                out.append(spelt[min(k, len(spelt) - 1)])
            elif ch == "<":
                out.append("&lt;")
            elif ch == "&":
                out.append("&amp;")
            else:
                out.append(ch)
        return "".join(out)


def _insert_missing(parts, missing):
    """Put lost placeholders back at their relative position in the translated text."""
    total = sum(len(v) for k, v in parts if k == "text")
    inserts = sorted(((round(r * total), i, t) for i, (t, r) in enumerate(missing)))
    out: list[tuple[str, str]] = []
    done = 0
    j = 0
    for kind, value in parts:
        if kind == "tag":
            out.append((kind, value))
            continue
        start = 0
        while j < len(inserts) and inserts[j][0] <= done + len(value):
            cut = inserts[j][0] - done
            # Snap to a word boundary so a tag never lands inside a word.
            while (
                0 < cut < len(value) and not value[cut - 1].isspace() and not value[cut].isspace()
            ):
                cut += 1
            out.append(("text", value[start:cut]))
            out.append(("tag", inserts[j][2]))
            start = cut
            j += 1
        out.append(("text", value[start:]))
        done += len(value)
    out.extend(("tag", t) for _, _, t in inserts[j:])
    return out


@dataclass
class HtmlDocument:
    """An HTML text as skeleton strings and blocks: skeleton[0] block[0] skeleton[1] ... skeleton[n]."""

    skeleton: list[str]
    blocks: list[_Block]

    def texts(self) -> list[str]:
        """The blocks' texts to translate (inline tags as placeholders)."""
        return [b.text for b in self.blocks]

    def render(self, translations: list[str]) -> str:
        if len(translations) != len(self.blocks):
            raise ValueError(f"expected {len(self.blocks)} translations, got {len(translations)}")
        out = [self.skeleton[0]]
        for block, text, skel in zip(self.blocks, translations, self.skeleton[1:], strict=True):
            out.append(block.render(text))
            out.append(skel)
        return "".join(out)

    def plain_text(self) -> str:
        """The text content, one block a line, whitespace runs collapsed, without placeholders."""
        lines = []
        for b in self.blocks:
            line = " ".join(_PLACEHOLDER.sub("", b.text).split())
            if line:
                lines.append(line)
        return "\n".join(lines)


class _Builder:
    def __init__(self):
        self.skeleton: list[str] = []
        self.blocks: list[_Block] = []
        self.pending_skeleton: list[str] = []
        self.items: list[
            tuple[str, str, str]
        ] = []  # (kind, raw, decoded) kind: text|open|close|atom
        self.open_ids: list[tuple[str, str]] = []

    def skel(self, raw: str) -> None:
        self.flush()
        self.pending_skeleton.append(raw)

    def item(self, kind: str, raw: str, decoded: str = "") -> None:
        self.items.append((kind, raw, decoded))

    def flush(self) -> None:
        items, self.items = self.items, []
        if not items:
            return
        if not any(k == "text" and d.strip() for k, _, d in items):
            self.pending_skeleton.extend(raw for _, raw, _ in items)
            return
        # Whitespace-only text and unpaired tags at the edges stay in the skeleton.
        self.skeleton.append("".join(self.pending_skeleton))
        self.pending_skeleton = []
        self.blocks.append(_make_block(items))

    def finish(self) -> HtmlDocument:
        self.flush()
        self.skeleton.append("".join(self.pending_skeleton))
        return HtmlDocument(self.skeleton, self.blocks)


def _make_block(items: list[tuple[str, str, str]]) -> _Block:
    # Pair open/close tags inside the block; anything unpaired becomes an atom.
    closes: dict[int, int] = {}
    stack: list[tuple[str, int]] = []
    for i, (kind, _, name) in enumerate(items):
        if kind == "open":
            stack.append((name, i))
        elif kind == "close":
            for j in range(len(stack) - 1, -1, -1):
                if stack[j][0] == name:
                    closes[stack[j][1]] = i
                    del stack[j:]
                    break
    text_parts: list[str] = []
    tags: dict[str, str] = {}
    placeholders: list[tuple[str, int]] = []
    ids: dict[int, int] = {}
    next_id = 1
    length = 0
    for i, (kind, raw, decoded) in enumerate(items):
        if kind == "text":
            text_parts.append(decoded)
            length += len(decoded)
            continue
        if kind == "open" and i in closes:
            ids[closes[i]] = next_id
            token = f"<x{next_id}>"
        elif kind == "close" and i in ids:
            token = f"</x{ids[i]}>"
        else:
            token = f"<x{next_id}/>"
        if not token.startswith("</"):
            next_id += 1
        tags[token] = raw
        placeholders.append((token, length))
        text_parts.append(token)
    total = max(length, 1)
    return _Block(
        text="".join(text_parts),
        tags=tags,
        order=[(t, pos / total) for t, pos in placeholders],
        spellings=_ordered_spellings(items),
    )


def _ordered_spellings(items: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    """For every character that was ever written as an entity (plus < and &), each occurrence's
    spelling in order; characters only ever written literally are left out."""
    entity_chars = {d for k, r, d in items if k == "text" and r != d and len(d) == 1}
    entity_chars |= {"<", "&"}
    spellings: dict[str, list[str]] = {}
    for kind, raw, decoded in items:
        if kind != "text":
            continue
        if raw != decoded and len(decoded) == 1:
            spellings.setdefault(decoded, []).append(raw)
            continue
        for ch in decoded:
            if ch in entity_chars:
                spellings.setdefault(ch, []).append(ch)
    return spellings


def parse_html(source: str) -> HtmlDocument:
    """Split an HTML page or fragment into skeleton and translatable blocks."""
    builder = _Builder()
    stack: list[tuple[str, bool]] = []  # open elements: (tag, protected)
    protected_depth = 0
    atom: list[str] | None = None  # raw parts of an inline protected element being collected
    atom_tag = ""
    atom_depth = 0

    for event in _events(source):
        kind, tag, raw = event.kind, event.tag, event.raw
        if atom is not None:  # inside a protected inline element: collect it whole
            atom.append(raw)
            if kind == "start" and tag == atom_tag:
                atom_depth += 1
            elif kind == "end" and tag == atom_tag:
                atom_depth -= 1
                if atom_depth == 0:
                    builder.item("atom", "".join(atom))
                    atom = None
            continue
        if protected_depth:
            builder.skel(raw)
            if kind == "start" and tag not in VOID:
                stack.append((tag, _protected(tag, event.attrs)))
                protected_depth += stack[-1][1]
            elif kind == "end":
                protected_depth -= _pop(stack, tag)
            continue
        if kind == "text":
            decoded = html.unescape(raw) if "&" in raw else raw
            builder.item("text", raw, decoded)
        elif kind == "other":  # comments, doctype, processing instructions
            if builder.items:
                builder.item("atom", raw)
            else:
                builder.skel(raw)
        elif kind in ("start", "startend"):
            is_protected = _protected(tag, event.attrs)
            if tag in INLINE or (is_protected and tag in ("code", "kbd", "samp", "span")):
                if is_protected and kind == "start" and tag not in VOID:
                    atom, atom_tag, atom_depth = [raw], tag, 1
                elif kind == "startend" or tag in VOID:
                    builder.item("atom", raw)
                else:
                    builder.item("open", raw, tag)
            else:
                builder.skel(raw)
                if kind == "start" and tag not in VOID:
                    stack.append((tag, is_protected))
                    protected_depth += is_protected
        elif kind == "end":
            if tag in INLINE:
                builder.item("close", raw, tag)
            else:
                builder.skel(raw)
                protected_depth -= _pop(stack, tag)
    if atom is not None:  # unclosed protected inline element: keep it as it was
        builder.item("atom", "".join(atom))
    return builder.finish()


def _pop(stack: list[tuple[str, bool]], tag: str) -> int:
    """Close `tag` (and anything left open inside it); how many protected elements closed."""
    for i in range(len(stack) - 1, -1, -1):
        if stack[i][0] == tag:
            closed = sum(p for _, p in stack[i:])
            del stack[i:]
            return closed
    return 0


def text_content(source: str) -> str:
    """The translatable text of an HTML page or fragment (for summarisation)."""
    return parse_html(source).plain_text()
