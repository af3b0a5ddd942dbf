"""Where a browser puts things: an HTML tokenizer and the part of tree construction that decides
which element each piece of an HTML text belongs to, with exact source offsets.

Hand-written on purpose. The stdlib `html.parser` does not follow the WHATWG tokenizer (`<!-->`,
`</ >`, character references without `;`, RCDATA in <title>/<textarea>, <script> escapes, CDATA
only in foreign content) and builds no tree, so it cannot say where an element ends when its end
tag is implied; html5lib, lxml and html5-parser build trees but report no source offsets, which a
byte-for-byte round trip needs. This module follows the WHATWG "tokenization" section for every
state that decides where a token ends, and the "tree construction" rules that decide which open
elements a token closes: implied end tags, "has an element in (button, list item, table) scope",
"any other end tag", foreign content (svg, math) with its breakout tags and integration points.
Not modelled (they never move a token's boundaries, only its parent in the DOM): the adoption
agency algorithm and the reconstruction of active formatting elements, foster parenting in tables,
the insertion modes of <select>, <table> and <frameset>.

Every step is O(1) amortised (scope checks use per-tag and per-category index stacks), so a text
costs time linear in its length whatever its tags.

`parse(source)` yields `Token`s whose `start:end` slices tile the source exactly.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from html.entities import html5

__all__ = ["Element", "Token", "decode_charref", "lt_is_text", "parse"]

_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_WS = "\t\n\f\r "  # the tokenizer's whitespace (CR: input preprocessing turns it into LF)
_ALPHA = frozenset(string.ascii_letters)

VOID = frozenset(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param "
    "source track wbr".split()
)
_RAWTEXT = frozenset("style xmp iframe noembed noframes noscript".split())
_RCDATA = frozenset(("title", "textarea"))

_SCOPE_HTML = frozenset("applet caption html table td th marquee object template".split())
_SCOPE_MATH = frozenset("mi mo mn ms mtext annotation-xml".split())
_SCOPE_SVG = frozenset(("foreignobject", "desc", "title"))
_SPECIAL = frozenset(
    """address applet area article aside base basefont bgsound blockquote body br button caption
    center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form frame
    frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link listing
    main marquee menu meta nav noembed noframes noscript object ol p param plaintext pre script
    search section select source style summary table tbody td template textarea tfoot th thead
    title tr track ul wbr xmp""".split()
)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_CLOSES_P = frozenset(
    """address article aside blockquote center details dialog dir div dl fieldset figcaption
    figure footer header hgroup main menu nav ol p search section summary ul pre listing form
    plaintext table xmp hr""".split()
)
_IMPLIED = frozenset("dd dt li optgroup option p rb rp rt rtc".split())
_SCOPED_END = frozenset(
    """address article aside blockquote button center details dialog dir div dl fieldset
    figcaption figure footer header hgroup listing main menu nav ol pre search section summary
    ul form applet marquee object""".split()
)
_TABLE_END = frozenset("table tbody thead tfoot tr td th caption colgroup".split())
_BREAKOUT = frozenset(
    """b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img
    li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul
    var""".split()
)

_TAG_NAME = re.compile(r"[^\t\n\f\r />]*")
_SEPARATOR = re.compile(r"[\t\n\f\r /]*")
_ATTRIBUTE = re.compile(
    r"""([^\t\n\f\r />][^\t\n\f\r /=>]*)[\t\n\f\r ]*"""
    r"""(?:=[\t\n\f\r ]*("[^"]*"?|'[^']*'?|[^\t\n\f\r >]*))?"""
)
_TEXT_STOP = re.compile(r"[<&]")
_NUMERIC = re.compile(r"#(?:[xX]([0-9A-Fa-f]+)|([0-9]+));?")
_NAME = re.compile(r"[A-Za-z0-9]+;?")
_LONGEST_NAME = max(len(n) for n in html5)


def decode_charref(text: str, i: int) -> tuple[int, str] | None:
    """The character reference at text[i] == "&" as a browser reads it in text: (end, decoded),
    or None when this "&" is a literal ampersand. Named references use the longest name in the
    HTML5 table that the text starts with (legacy names need no `;`); numeric ones are mapped
    as the spec says (0, surrogates, > U+10FFFF -> U+FFFD; 0x80-0x9F as windows-1252)."""
    if text.startswith("#", i + 1):
        m = _NUMERIC.match(text, i + 1)
        if m is None:
            return None
        digits, base = (m.group(1), 16) if m.group(1) is not None else (m.group(2), 10)
        digits = digits.lstrip("0") or "0"
        number = int(digits, base) if len(digits) <= 8 else 0x110000
        return m.end(), _code_point(number)
    m = _NAME.match(text, i + 1)
    if m is None:
        return None
    name = m.group(0)
    for length in range(min(len(name), _LONGEST_NAME), 0, -1):
        value = html5.get(name[:length])
        if value is not None:
            return i + 1 + length, value
    return None


def _code_point(number: int) -> str:
    if number == 0 or number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
        return "\ufffd"
    if 0x80 <= number <= 0x9F:
        try:
            return bytes([number]).decode("cp1252")
        except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: the spec keeps them
            return chr(number)
    return chr(number)


def lt_is_text(text: str, i: int, rcdata: str | None = None) -> bool:
    """Whether the "<" at text[i] is text (starts no tag, comment or end tag) when what follows it
    is exactly text[i + 1:]; `rcdata`: inside that RCDATA element (title, textarea)."""
    if rcdata is not None:  # only its own end tag is markup there
        return not (text.startswith("/", i + 1) and _appropriate_end(text, i + 2, rcdata))
    nxt = text[i + 1 : i + 2]
    if nxt == "/":
        return i + 2 == len(text)  # "</" then the end of the input is text; else markup
    return not (nxt in _ALPHA or nxt in ("!", "?"))


@lru_cache(maxsize=64)
def _end_tag_pattern(name: str) -> re.Pattern:
    return re.compile(r"</" + re.escape(name) + r"(?=[\t\n\f\r />])", re.IGNORECASE | re.ASCII)


def _appropriate_end(text: str, i: int, name: str) -> int | None:
    """If text[i:] starts with `name` (any ASCII case) then whitespace, / or >: the name's end."""
    end = i + len(name)
    if text[i:end].translate(_LOWER) == name and text[end : end + 1] and text[end] in "\t\n\f\r />":
        return end
    return None


@dataclass(eq=False)
class Element:
    """An open element. `mark` is free for the consumer (markup.py marks protected elements)."""

    tag: str
    attrs: dict[str, str]
    ns: str = "html"  # html | svg | math
    mark: bool = False

    @property
    def integration_point(self) -> bool:
        if self.ns == "svg":
            return self.tag in _SCOPE_SVG
        if self.ns == "math":
            if self.tag == "annotation-xml":
                return self.attrs.get("encoding", "").lower() in (
                    "text/html",
                    "application/xhtml+xml",
                )
            return self.tag in ("mi", "mo", "mn", "ms", "mtext")
        return False


@dataclass(eq=False)
class Token:
    """One piece of the source, source[start:end].

    kind: text (in data or RCDATA; `decoded` is what it displays), rawtext (contents of script,
    style and other raw text elements), start, end, other (comments, doctype, CDATA, bogus
    comments, `</>`, a tag cut off by the end of the input). For start and end tags: `closes` are
    the elements this token ends before it (implied end tags, a start tag's implied closes),
    `closes_self` the element whose own end tag this is, `opens` the element it opened.
    """

    kind: str
    start: int
    end: int
    tag: str = ""
    decoded: str = ""
    rcdata: str | None = None  # for text inside <title>/<textarea>: that element's name
    closes: list[Element] = field(default_factory=list)
    closes_self: Element | None = None
    opens: Element | None = None


_CATEGORIES = ("scope", "button", "list", "table", "special", "li_stop", "dd_stop", "html")


def _categories(el: Element) -> list[str]:
    if el.ns == "html":
        cats = ["html"]
        if el.tag in _SCOPE_HTML:
            cats += ["scope", "button", "list"]
            if el.tag in ("html", "table", "template"):
                cats.append("table")
        elif el.tag == "button":
            cats.append("button")
        elif el.tag in ("ol", "ul"):
            cats.append("list")
        if el.tag in _SPECIAL:
            cats.append("special")
            if el.tag not in ("address", "div", "p", "li"):
                cats.append("li_stop")
            if el.tag not in ("address", "div", "p", "dd", "dt"):
                cats.append("dd_stop")
        return cats
    boundary = el.tag in (_SCOPE_MATH if el.ns == "math" else _SCOPE_SVG)
    cats = ["scope", "button", "list"] if boundary else []
    if boundary or el.tag == "foreignobject":
        cats += ["special", "li_stop", "dd_stop"]
    return cats


class _Stack:
    """The stack of open elements, with per-tag and per-category index stacks so that scope
    checks and "pop until" are O(1) amortised instead of a walk down the stack."""

    def __init__(self) -> None:
        self.items: list[Element] = []
        self.by_tag: dict[str, list[int]] = {}
        self.by_cat: dict[str, list[int]] = {c: [] for c in _CATEGORIES}
        self._cats: list[list[str]] = []

    @property
    def top(self) -> Element | None:
        return self.items[-1] if self.items else None

    def push(self, el: Element) -> None:
        i = len(self.items)
        self.items.append(el)
        self.by_tag.setdefault(el.tag, []).append(i)
        cats = _categories(el)
        self._cats.append(cats)
        for c in cats:
            self.by_cat[c].append(i)

    def pop_to(self, i: int) -> list[Element]:
        """Pop items[i] and everything above it; innermost first."""
        popped = []
        while len(self.items) > i:
            el = self.items.pop()
            self.by_tag[el.tag].pop()
            for c in self._cats.pop():
                self.by_cat[c].pop()
            popped.append(el)
        return popped

    def highest(self, *tags: str) -> int:
        return max((self.by_tag[t][-1] for t in tags if self.by_tag.get(t)), default=-1)

    def highest_in(self, category: str) -> int:
        indices = self.by_cat[category]
        return indices[-1] if indices else -1

    def in_scope(self, tags: tuple[str, ...], scope: str) -> int:
        """Index of the highest of `tags` if it is in `scope` (scope, button, list, table), else -1."""
        i = self.highest(*tags)
        return i if i >= 0 and i >= self.highest_in(scope) else -1


class _TreeBuilder:
    """The tree construction rules that decide which open elements a tag closes."""

    def __init__(self) -> None:
        self.stack = _Stack()

    def foreign(self) -> bool:
        """Whether the adjusted current node is in a foreign (svg, math) namespace."""
        top = self.stack.top
        return top is not None and top.ns != "html"

    def _html_rules_for_start(self, tag: str) -> bool:
        top = self.stack.top
        if top is None or top.ns == "html":
            return True
        if top.ns == "math" and top.tag in ("mi", "mo", "mn", "ms", "mtext"):
            return tag not in ("mglyph", "malignmark")
        if top.ns == "math" and top.tag == "annotation-xml" and tag == "svg":
            return True
        return top.integration_point

    def _break_out(self) -> list[Element]:
        closed: list[Element] = []
        stack = self.stack
        while stack.top is not None and stack.top.ns != "html" and not stack.top.integration_point:
            closed += stack.pop_to(len(stack.items) - 1)
        return closed

    def start(self, token: Token, attrs: dict[str, str], self_closing: bool) -> None:
        tag, stack = token.tag, self.stack
        closes: list[Element] = token.closes  # a </br> may have broken out of foreign content
        if not self._html_rules_for_start(tag):
            breakout = tag in _BREAKOUT or (
                tag == "font" and any(a in attrs for a in ("color", "face", "size"))
            )
            if not breakout:
                el = Element(tag, attrs, stack.top.ns)  # type: ignore[union-attr]
                if not self_closing:
                    stack.push(el)
                    token.opens = el
                return
            closes += self._break_out()
        if tag in ("svg", "math"):
            el = Element(tag, attrs, tag)
            if not self_closing:
                stack.push(el)
                token.opens = el
            token.closes = closes
            return
        if tag == "image":
            tag = token.tag = "img"
        if tag in _CLOSES_P or tag in _HEADINGS:
            closes += self._close_p()
            if tag in _HEADINGS and stack.top is not None and stack.top.tag in _HEADINGS:
                closes += stack.pop_to(len(stack.items) - 1)
        elif tag == "li":
            i = stack.highest("li")
            if i >= 0 and i > stack.highest_in("li_stop"):
                closes += stack.pop_to(i)
            closes += self._close_p()
        elif tag in ("dd", "dt"):
            i = stack.highest("dd", "dt")
            if i >= 0 and i > stack.highest_in("dd_stop"):
                closes += stack.pop_to(i)
            closes += self._close_p()
        elif tag in ("option", "optgroup"):
            if stack.top is not None and stack.top.tag == "option":
                closes += stack.pop_to(len(stack.items) - 1)
            if tag == "optgroup" and stack.top is not None and stack.top.tag == "optgroup":
                closes += stack.pop_to(len(stack.items) - 1)
        elif tag == "button":  # (a nested <a> or <nobr> runs the adoption agency: not modelled)
            i = stack.in_scope((tag,), "scope")
            if i >= 0:
                closes += stack.pop_to(i)
        elif tag in ("td", "th", "tr", "tbody", "thead", "tfoot"):
            closes += self._close_table_parts(tag)
        elif tag in ("rb", "rtc", "rp", "rt") and stack.in_scope(("ruby",), "scope") >= 0:
            keep = "rtc" if tag in ("rp", "rt") else None
            while stack.top is not None and stack.top.tag in _IMPLIED and stack.top.tag != keep:
                closes += stack.pop_to(len(stack.items) - 1)
        token.closes = closes
        if tag in VOID or (tag in ("html", "body", "head") and stack.highest(tag) >= 0):
            return
        el = Element(tag, attrs)
        stack.push(el)
        token.opens = el

    def _close_p(self) -> list[Element]:
        i = self.stack.in_scope(("p",), "button")
        return self.stack.pop_to(i) if i >= 0 else []

    def _close_table_parts(self, tag: str) -> list[Element]:
        stack = self.stack
        parts = [("td", "th")]
        if tag in ("tr", "tbody", "thead", "tfoot"):
            parts.append(("tr",))
        if tag in ("tbody", "thead", "tfoot"):
            parts.append(("tbody", "thead", "tfoot"))
        closed: list[Element] = []
        for names in parts:
            i = stack.in_scope(names, "table")
            if i >= 0:
                closed += stack.pop_to(i)
        return closed

    def end(self, token: Token) -> bool:
        """Apply an end tag; False when it is really a start tag (`</br>`)."""
        tag, stack = token.tag, self.stack
        if self.foreign():
            if tag in ("br", "p"):
                token.closes = self._break_out()
            else:
                i = stack.highest(tag)
                if i >= 0 and i > stack.highest_in("html"):
                    self._pop_into(token, i)
                    return True
        if tag == "br":
            return False
        if tag == "p":
            i = stack.in_scope(("p",), "button")
        elif tag == "li":
            i = stack.in_scope(("li",), "list")
        elif tag in ("dd", "dt") or tag in _SCOPED_END:
            i = stack.in_scope((tag,), "scope")
        elif tag in _HEADINGS:
            i = stack.in_scope(_HEADINGS, "scope")
        elif tag in _TABLE_END:
            i = stack.in_scope((tag,), "table")
        elif tag in ("body", "html"):
            i = -1  # the body stays open: what follows still belongs in it
        else:  # "any other end tag"
            i = stack.highest(tag)
            if i < stack.highest_in("special"):
                i = -1
        if i >= 0:
            self._pop_into(token, i)
        return True

    def _pop_into(self, token: Token, i: int) -> None:
        popped = self.stack.pop_to(i)
        token.closes += popped[:-1]
        token.closes_self = popped[-1]


def _tag_end(text: str, i: int) -> tuple[int, dict[str, str], bool] | None:
    """From just after a tag name to just after its ">": (end, attributes, self-closing), or None
    when the input ends first (a browser then drops the tag)."""
    n = len(text)
    attrs: dict[str, str] = {}
    while True:
        sep = _SEPARATOR.match(text, i)
        i = sep.end()
        if i >= n:
            return None
        if text[i] == ">":
            return i + 1, attrs, sep.group(0).endswith("/")
        m = _ATTRIBUTE.match(text, i)
        value = m.group(2) or ""
        if value[:1] in ('"', "'"):
            if len(value) == 1 or value[-1] != value[0]:
                return None  # unterminated quoted value
            value = value[1:-1]
        name = m.group(1).translate(_LOWER)
        if name not in attrs:
            attrs[name] = _decode_attribute(value)
        i = m.end()


def _decode_attribute(value: str) -> str:
    if "&" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        j = value.find("&", i)
        if j < 0:
            out.append(value[i:])
            break
        out.append(value[i:j])
        ref = decode_charref(value, j)
        if ref is None:
            out.append("&")
            i = j + 1
        else:
            out.append(ref[1])
            i = ref[0]
    return "".join(out)


def _script_end(text: str, i: int) -> int:
    """Where the script data starting at text[i] ends (the "<" of its end tag, or len(text)),
    following the script data (escaped, double escaped) states."""
    n = len(text)
    state = "data"
    while i < n:
        if state == "data":
            j = text.find("<", i)
            if j < 0:
                return n
            if text.startswith("/", j + 1) and _appropriate_end(text, j + 2, "script"):
                return j
            if text.startswith("!--", j + 1):
                state, i = "escaped_dash_dash", j + 4
            else:
                i = j + 1
            continue
        c = text[i]
        double = state.startswith("double")
        if c == "<" and double:
            state = "double_escaped"
            if text.startswith("/", i + 1):  # double escape end: "</script" goes back to escaped
                name_end = _letters_end(text, i + 2)
                if name_end < n and text[name_end] in "\t\n\f\r />":
                    if text[i + 2 : name_end].translate(_LOWER) == "script":
                        state = "escaped"
                    i = name_end + 1
                else:
                    i = name_end
            else:
                i += 1
            continue
        if c == "<":
            if text.startswith("/", i + 1):
                if _appropriate_end(text, i + 2, "script"):
                    return i
                state, i = "escaped", i + 2
            elif text[i + 1 : i + 2] in _ALPHA:  # double escape start: "<script" nests
                name_end = _letters_end(text, i + 1)
                state = "escaped"
                if name_end < n and text[name_end] in "\t\n\f\r />":
                    if text[i + 1 : name_end].translate(_LOWER) == "script":
                        state = "double_escaped"
                    i = name_end + 1
                else:
                    i = name_end
            else:
                state, i = "escaped", i + 1
            continue
        prefix = "double_escaped" if double else "escaped"
        if c == "-":
            state = prefix + ("_dash" if state == prefix else "_dash_dash")
        elif c == ">" and state.endswith("dash_dash"):
            state = "data"
        else:
            state = prefix
        i += 1
    return n


def _letters_end(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _ALPHA:
        i += 1
    return i


def _markup_declaration_end(text: str, i: int, foreign: bool) -> int:
    """End of what starts with "<!" at text[i]: comment, doctype, CDATA or bogus comment."""
    n = len(text)
    if text.startswith("--", i + 2):
        j = i + 4
        if text.startswith(">", j):
            return j + 1
        if text.startswith("->", j):
            return j + 2
        ends = [k + len(s) for s in ("-->", "--!>") if (k := text.find(s, j)) >= 0]
        return min(ends) if ends else n
    if foreign and text.startswith("[CDATA[", i + 2):
        k = text.find("]]>", i + 9)
        return k + 3 if k >= 0 else n
    k = text.find(">", i + 2)  # doctype or bogus comment: both end at the first ">"
    return k + 1 if k >= 0 else n


def _text_tokens(text: str, start: int, end: int, rcdata: str | None) -> Iterator[Token]:
    """Text and character references in text[start:end] (no markup there)."""
    i = start
    while i < end:
        j = text.find("&", i, end)
        if j < 0:
            yield Token("text", i, end, decoded=text[i:end], rcdata=rcdata)
            return
        ref = decode_charref(text, j)  # a reference never runs into the "<" at `end`
        if ref is None:  # a literal "&": part of the text run
            k = text.find("&", j + 1, end)
            stop = end if k < 0 else k
            yield Token("text", i, stop, decoded=text[i:stop], rcdata=rcdata)
            i = stop
            continue
        if j > i:
            yield Token("text", i, j, decoded=text[i:j], rcdata=rcdata)
        yield Token("text", j, ref[0], decoded=ref[1], rcdata=rcdata)
        i = ref[0]


def parse(text: str) -> Iterator[Token]:
    """Tokens of an HTML text, in order, tiling it exactly, with their tree effects."""
    tree = _TreeBuilder()
    n = len(text)
    i = 0
    while i < n:
        m = _TEXT_STOP.search(text, i)
        j = m.start() if m else n
        if text.startswith("&", j):  # text up to the next "<" (references inside)
            k = text.find("<", j)
            j = n if k < 0 else k
        if j > i:
            yield from _text_tokens(text, i, j, None)
            i = j
            continue
        # text[i] == "<"
        nxt = text[i + 1 : i + 2]
        if nxt in _ALPHA or (nxt == "/" and text[i + 2 : i + 3] in _ALPHA):
            is_end = nxt == "/"
            name_start = i + 2 if is_end else i + 1
            name_end = _TAG_NAME.match(text, name_start).end()
            rest = _tag_end(text, name_end)
            if rest is None:
                yield Token("other", i, n)
                return
            end, attrs, self_closing = rest
            tag = text[name_start:name_end].translate(_LOWER)
            token = Token("end" if is_end else "start", i, end, tag=tag)
            if is_end and not tree.end(token):
                token.kind = "start"  # </br> is <br>
                is_end = False
            if not is_end:
                tree.start(token, attrs, self_closing)
            yield token
            i = end
            if token.kind == "start" and token.opens is not None and token.opens.ns == "html":
                i = yield from _raw_content(text, i, token.tag, tree)
            continue
        if nxt == "!":
            end = _markup_declaration_end(text, i, tree.foreign())
        elif nxt == "?":
            k = text.find(">", i + 1)
            end = k + 1 if k >= 0 else n
        elif nxt == "/" and text[i + 2 : i + 3] == ">":
            end = i + 3  # "</>": ignored
        elif nxt == "/" and i + 2 < n:
            k = text.find(">", i + 2)  # bogus comment
            end = k + 1 if k >= 0 else n
        else:  # "<" that starts nothing: text ("<" then EOF, "</" then EOF, "< ", "<3"...)
            end = i + 2 if nxt == "/" else i + 1
            yield Token("text", i, end, decoded=text[i:end])
            i = end
            continue
        yield Token("other", i, end)
        i = end


def _raw_content(text: str, i: int, tag: str, tree: _TreeBuilder):
    """After the start tag of a raw text, RCDATA, script or plaintext element: its contents (and
    its end tag, which closes it). Returns where parsing goes on."""
    n = len(text)
    if tag == "script":
        end = _script_end(text, i)
    elif tag in _RAWTEXT or tag in _RCDATA:
        m = _end_tag_pattern(tag).search(text, i)
        end = m.start() if m else n
    elif tag == "plaintext":
        end = n
    else:
        return i
    if end > i:
        if tag in _RCDATA:
            yield from _text_tokens(text, i, end, tag)
        else:
            yield Token("rawtext", i, end)
    if end >= n:
        return n
    name_end = end + 2 + len(tag)
    rest = _tag_end(text, name_end)
    if rest is None:
        yield Token("other", end, n)
        return n
    token = Token("end", end, rest[0], tag=tag)
    tree.end(token)
    yield token
    return rest[0]
