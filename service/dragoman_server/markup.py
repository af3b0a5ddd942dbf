"""HTML for translation: split a page or fragment into translatable blocks and put it back together.

Parsed by `html_tree` (a WHATWG tokenizer with the tree rules that decide where elements end),
never with regexes. Every token is kept as the exact slice of the input it came from, so
`render(texts())` gives back the input byte for byte, references, comments, odd whitespace and
malformed bits included.

- Blocks: runs of text and *inline* elements (a, em, strong, span...) between block-level tags (p,
  div, li, h1-h6, br, td, title...). A block is one unit of translation, so a sentence that holds a
  link or an emphasis is translated as one sentence.
- Inline tags are carried through the model as short XML-like placeholders: `<x3>`..`</x3>` for an
  element, `<x4/>` for a void or protected inline element (img, code, translate="no" spans,
  comments). This is how Google's and DeepL's HTML modes work: the model sees the sentence with
  its markup, so for a real model the tags follow the words they wrap, even when the word order
  changes. A placeholder the model lost is put back at the same relative position in the block
  (for a copy model that is the same position); unknown ones it invented are dropped.
  The letters after "<" (`x` here) are chosen per document so that no placeholder can be confused
  with the caller's own text: see `placeholder_name`.
- Left alone (part of the skeleton, never sent to a model): script, style, code, pre, textarea,
  svg, math, noscript, template, the other raw text elements, and any element with translate="no"
  or class "notranslate" -- until the point where a browser ends it (implied end tags included).
- Character references: the model sees the decoded text; on the way back each piece of text that
  was written as a reference in the block is written the same way again (the n-th occurrence as
  the n-th was spelt, `&amp` without `;` included) wherever that spelling still reads the same in
  its new context; `<` and `&` that did not come from the input are escaped.
- Attribute values (title, alt) are kept as they are: not translated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import count, product

from .html_tree import Element, Token, decode_charref, lt_is_text, parse

__all__ = ["HtmlDocument", "parse_html", "placeholder_name", "text_content"]

INLINE = frozenset(
    """a abbr acronym b bdi bdo big cite data del dfn em font i img ins kbd label mark q s samp
    small span strike strong sub sup time tt u var wbr""".split()
)
SKIP = frozenset(
    """script style code pre textarea svg math noscript template kbd samp xmp iframe noembed
    noframes plaintext listing""".split()
)
_INLINE_ATOMS = INLINE | {"code"}  # protected elements that stay inside their sentence
_SENTINEL_CONTEXT = 40  # enough raw text after a reference to know how a browser reads it


def placeholder_name(texts: Iterable[str], reserved: Iterable[str] = ()) -> str:
    r"""The letters of a document's placeholders (`<N1>`, `</N1>`, `<N2/>`).

    Invariant: no text in `texts` contains `<N` or `</N` (any ASCII case), and N (letters only,
    no "<") occurs in no `reserved` string (any case). Hence in a block's model text, where
    placeholders are joined to those texts, every match of `<(/?)N(\d+)(/?)>` is a placeholder we
    put there: a match that began inside a text would need `<N` or `</N` in it, or a "<" of a
    placeholder inside N. With the copy model the output is the input, so each placeholder comes
    back as itself and nothing else does. The first candidate is `x`; each length L offers 26**L
    names and a text blocks at most two of them per "<", so the search is linear in the text.
    """
    texts = list(texts)
    reserved = [r.lower() for r in reserved]
    for length in count(1):
        blocked: set[str] = set()
        for text in texts:
            start = text.find("<")
            while start >= 0:
                for j in (start + 1, start + 2 if text.startswith("/", start + 1) else -1):
                    if j > 0:
                        blocked.add(text[j : j + length].lower())
                start = text.find("<", start + 1)
        for letters in product("xyzwvqjkmnpghfbdcltsroeiua", repeat=length):
            name = "".join(letters)
            if name not in blocked and not any(name in r for r in reserved):
                return name
    raise AssertionError("unreachable")


class _Block:
    """Translatable text with placeholders, and how to turn a translation of it back into HTML."""

    def __init__(self, items: list[tuple[str, str, str]], name: str, rcdata: str | None):
        self.rcdata = rcdata  # the RCDATA element (title) this block's text sits in, if any
        self.at_end = False  # nothing follows the block in the document
        self.placeholders = re.compile(r"<(/?)" + name + r"(\d+)(/?)>")
        self.text, self.tags, self.order = _with_placeholders(items, name)
        self.keys = {d for k, r, d in items if k == "text" and r != d} | {"<", "&"}
        self.spellings: dict[str, list[str]] = {}
        for run in _text_runs(items):
            decoded = "".join(d for _, d in run)
            raws = [c for r, d in run for c in _char_raws(r, d)]
            for start, end, key in _units(decoded, self.keys):
                if key is not None:
                    self.spellings.setdefault(key, []).append("".join(raws[start:end]))

    def render(self, translated: str) -> str:
        parts: list[tuple[str, str]] = []  # ("text", decoded) | ("tag", placeholder)
        pos = 0
        seen: set[str] = set()
        for m in self.placeholders.finditer(translated):
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
        return self._encode(parts)

    def _encode(self, parts: list[tuple[str, str]]) -> str:
        """Raw HTML for the parts: the n-th unit of each key spelt as the n-th was in the input,
        where that spelling reads the same before what follows it; else escaped as needed.
        Decided right to left, since how a reference without `;` reads depends on what follows."""
        pieces: list[tuple[str, str | None]] = []  # (raw tag | decoded unit, its spelling)
        used: dict[str, int] = {}
        for kind, value in parts:
            if kind == "tag":
                pieces.append((self.tags[value], None))
                continue
            for start, end, key in _units(value, self.keys):
                unit = value[start:end]
                spelt = None
                if key is not None:
                    k = used.get(key, 0)
                    used[key] = k + 1
                    options = self.spellings.get(key, [])
                    spelt = options[k] if k < len(options) else _escape(unit)
                pieces.append((unit, spelt))
        out: list[str] = []
        after = "" if self.at_end else "<"  # a block is followed by a tag or by the end
        for index in range(len(pieces) - 1, -1, -1):
            value, spelt = pieces[index]
            if spelt is None:  # a tag, or text never written as a reference
                raw = value
            elif _reads_as(spelt, after, value, self.rcdata):
                raw = spelt
            else:
                raw = _escape(value)
            out.append(raw)
            after = (raw + after)[:_SENTINEL_CONTEXT]
        return "".join(reversed(out))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _reads_as(raw: str, after: str, unit: str, rcdata: str | None) -> bool:
    """Whether `raw` followed by `after` displays `unit` and then exactly what `after` does."""
    text = raw + after
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "&":
            ref = decode_charref(text, i)
            if ref is not None:
                if ref[0] > len(raw):
                    return False
                out.append(ref[1])
                i = ref[0]
                continue
        elif c == "<" and not lt_is_text(text, i, rcdata):
            return False
        out.append(c)
        i += 1
    return "".join(out) == unit


def _char_raws(raw: str, decoded: str) -> list[str]:
    """Per decoded character, the raw text it came from ("" for the rest of a reference)."""
    if raw == decoded:
        return list(raw)
    return [raw] + [""] * (len(decoded) - 1)


def _units(text: str, keys: set[str]) -> list[tuple[int, int, str | None]]:
    """Split decoded text into (start, end, key): the longest key at each place, else one char
    (key None). The same split on input and output pairs the n-th occurrences of a key."""
    out: list[tuple[int, int, str | None]] = []
    i = 0
    n = len(text)
    while i < n:
        if text[i : i + 2] in keys and i + 1 < n:
            out.append((i, i + 2, text[i : i + 2]))
            i += 2
        elif text[i] in keys:
            out.append((i, i + 1, text[i]))
            i += 1
        else:
            j = i + 1
            while j < n and text[j] not in keys and text[j : j + 2] not in keys:
                j += 1
            out.append((i, j, None))
            i = j
    return out


def _text_runs(items: list[tuple[str, str, str]]) -> list[list[tuple[str, str]]]:
    """The (raw, decoded) text pieces of a block, split where a tag or atom comes between."""
    runs: list[list[tuple[str, str]]] = [[]]
    for kind, raw, decoded in items:
        if kind == "text":
            runs[-1].append((raw, decoded))
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def _with_placeholders(
    items: list[tuple[str, str, str]], name: str
) -> tuple[str, dict[str, str], list[tuple[str, float]]]:
    """(model text, placeholder -> raw html, placeholders in order with relative position).

    Open and close tags in the block are paired by name (a close pairs with the nearest open of
    its name; opens left inside that pair stay unpaired); anything unpaired becomes an atom.
    Linear: per-name stacks of open indices, each popped at most once."""
    closes: dict[int, int] = {}
    stack: list[tuple[str, int]] = []
    by_name: dict[str, list[int]] = {}
    for i, (kind, _, tag) in enumerate(items):
        if kind == "open":
            by_name.setdefault(tag, []).append(len(stack))
            stack.append((tag, i))
        elif kind == "close" and by_name.get(tag):
            depth = by_name[tag][-1]
            closes[stack[depth][1]] = i
            while len(stack) > depth:
                by_name[stack.pop()[0]].pop()
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
            token = f"<{name}{next_id}>"
        elif kind == "close" and i in ids:
            token = f"</{name}{ids[i]}>"
        else:
            token = f"<{name}{next_id}/>"
        if not token.startswith("</"):
            next_id += 1
        tags[token] = raw
        placeholders.append((token, length))
        text_parts.append(token)
    total = max(length, 1)
    return "".join(text_parts), tags, [(t, pos / total) for t, pos in placeholders]


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
            cut = max(inserts[j][0] - done, start)
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
    placeholders: re.Pattern  # matches this document's placeholders, and nothing in its text

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
            line = " ".join(self.placeholders.sub("", b.text).split())
            if line:
                lines.append(line)
        return "\n".join(lines)


class _Builder:
    """Collects tokens into skeleton strings and blocks' items."""

    def __init__(self):
        self.skeleton: list[str] = []
        self.block_items: list[list[tuple[str, str, str]]] = []
        self.block_rcdata: list[str | None] = []
        self.pending_skeleton: list[str] = []
        self.items: list[tuple[str, str, str]] = []  # (kind, raw, decoded|tag) text|open|close|atom
        self.rcdata: str | None = None

    def skel(self, raw: str) -> None:
        self.flush()
        self.pending_skeleton.append(raw)

    def item(self, kind: str, raw: str, decoded: str = "") -> None:
        self.items.append((kind, raw, decoded))

    def flush(self) -> None:
        items, self.items = self.items, []
        rcdata, self.rcdata = self.rcdata, None
        if not items:
            return
        if not any(k == "text" and d.strip() for k, _, d in items):
            self.pending_skeleton.extend(raw for _, raw, _ in items)
            return
        self.skeleton.append("".join(self.pending_skeleton))
        self.pending_skeleton = []
        self.block_items.append(items)
        self.block_rcdata.append(rcdata)

    def finish(self, reserved: Iterable[str]) -> HtmlDocument:
        self.flush()
        self.skeleton.append("".join(self.pending_skeleton))
        texts = [d for items in self.block_items for k, _, d in items if k == "text"]
        name = placeholder_name(["".join(texts)], reserved)
        blocks = [
            _Block(items, name, rcdata)
            for items, rcdata in zip(self.block_items, self.block_rcdata, strict=True)
        ]
        if blocks and not self.skeleton[-1]:
            blocks[-1].at_end = True
        return HtmlDocument(self.skeleton, blocks, re.compile(r"<(/?)" + name + r"(\d+)(/?)>"))


def _protected(el: Element) -> bool:
    if el.ns == "html" and el.tag in SKIP or el.tag in ("svg", "math"):
        return True
    if el.attrs.get("translate", "").strip().lower() == "no":
        return True
    return "notranslate" in el.attrs.get("class", "").split()


class _Placer:
    """Puts each token in a block, in an atom (a protected inline element, kept whole in its
    sentence) or in the skeleton, following which protected elements are open."""

    def __init__(self, source: str, builder: _Builder):
        self.source = source
        self.builder = builder
        self.protected_open = 0  # protected elements open (a browser's view, implied ends too)
        self.atom: list[str] | None = None

    def close(self, el: Element) -> None:
        if el.mark:
            self.protected_open -= 1
            if self.protected_open == 0 and self.atom is not None:
                self.builder.item("atom", "".join(self.atom))
                self.atom = None

    def place(self, token: Token) -> None:
        raw = self.source[token.start : token.end]
        for el in token.closes:
            self.close(el)
        opens = token.opens
        if opens is not None and _protected(opens):
            opens.mark = True
            if self.protected_open == 0 and opens.tag in _INLINE_ATOMS:
                self.atom = []
            self.protected_open += 1
        if self.protected_open:
            if self.atom is not None:
                self.atom.append(raw)
            else:
                self.builder.skel(raw)
        else:
            self._place_translatable(token, raw)
        if token.closes_self is not None:
            self.close(token.closes_self)

    def _place_translatable(self, token: Token, raw: str) -> None:
        builder, kind, tag = self.builder, token.kind, token.tag
        if kind == "text":
            if token.rcdata is not None:
                builder.rcdata = token.rcdata
            builder.item("text", raw, token.decoded)
        elif kind in ("other", "rawtext"):  # comments, doctype, CDATA, cut-off tags
            if builder.items:
                builder.item("atom", raw)
            else:
                builder.skel(raw)
        elif tag in INLINE:
            if kind == "start" and token.opens is not None:
                builder.item("open", raw, tag)
            elif kind == "start":  # void (img, wbr) or self-closing foreign
                builder.item("atom", raw)
            else:
                builder.item("close", raw, tag)
        else:
            builder.skel(raw)

    def finish(self) -> None:
        if self.atom is not None:  # unclosed protected inline element: keep it as it was
            self.builder.item("atom", "".join(self.atom))
            self.atom = None


def parse_html(source: str, reserved: Iterable[str] = ()) -> HtmlDocument:
    """Split an HTML page or fragment into skeleton and translatable blocks.

    `reserved`: strings that will be put into the blocks' translations before `render` (glossary
    terms and their translations); the placeholders are chosen to collide with none of them."""
    builder = _Builder()
    placer = _Placer(source, builder)
    for token in parse(source):
        placer.place(token)
    placer.finish()
    return builder.finish(reserved)


def text_content(source: str) -> str:
    """The translatable text of an HTML page or fragment (for summarisation)."""
    return parse_html(source).plain_text()
