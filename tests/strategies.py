"""Hypothesis strategies that write news-like Portuguese, with adversarial insertions.

For the fidelity oracle (tests/test_oracle.py): through the copy model every one of these texts
must come back exactly. The text is ordinary wire copy (datelines, quotes, figures with every
separator, abbreviations that end in a full stop) with, on request, things that look like
Dragoman's own markers or that a careless text pipeline changes:

- `lookalikes`: placeholder lookalikes of every scheme the code has used (glossary `GLS1`,
  `GLS10000` for a later hop's glossary, inline-tag `<x1>`, `</x1>`, `<x2/>`);
- `repeats`: a word repeated three or more times with every kind of whitespace between the
  repeats (no-break space, narrow no-break space, tab, two spaces), and figures whose digit
  groups repeat ("1 000 000 000");
- `unicode` (always on): combining marks, ZWJ emoji, bidi marks (U+200E/F, U+202A-E, U+2066-9),
  and every line break (CRLF, lone CR, U+2028, U+2029, form feed) between paragraphs.

`html_documents` escapes the same text into <p> blocks with inline tags; with `entities` it also
writes raw character references with and without the final `;` (`&amp`, `&copy`, `&#169`,
`&amplt;b&ampgt;`), which browsers accept.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from hypothesis import assume
from hypothesis import strategies as st

WORDS = """o a os as de do da dos das em no na um uma que por para com sem sobre entre até
Governo governo ministro ministra presidente Parlamento câmara país cidade região Lisboa Porto
Coimbra Braga Faro Brasília São Paulo Europa Portugal Brasil Comissão Europeia orçamento
inflação salário pensões empresa empresas trabalhadores greve acordo lei proposta votação
aprovou anunciou disse afirmou revelou garantiu explicou criticou defendeu recusou adiantou
ontem hoje amanhã segunda-feira terça-feira semana mês ano milhões mil euros reais dólares
subida descida aumento queda crescimento juros taxa preços habitação saúde escola hospital
tribunal polícia incêndio chuva seca sismo eleições partido oposição deputados autarca
jornalistas segundo fonte oficial comunicado relatório dados números estudo sondagem
também ainda já não mais menos muito pouco cerca quase apenas sempre nunca depois antes
novo nova novos novas grande grandes primeiro primeira último última próximo próxima
ação eleição produção população informação decisão opinião questão água mãe irmã pôr
""".split()

NAMES = """Silva Costa Santos Ferreira Pereira Oliveira Rodrigues Martins Sousa Fernandes Gomes
Marcelo Lula Montenegro Albuquerque Nóbrega Araújo Guimarães Conceição""".split()

PLACES = ["Lisboa", "Porto", "Coimbra", "Bruxelas", "Brasília", "São Paulo", "Funchal", "Luanda"]
AGENCIES = ["Lusa", "Agência Brasil", "AFP", "Reuters", "EFE"]
MONTHS = "jan. fev. mar. abr. mai. jun. jul. ago. set. out. nov. dez.".split()

# Titles and abbreviations that end in a full stop but do not end a sentence.
TITLES = ["Sr.", "Sra.", "Dr.", "Dra.", "Prof.", "Eng.", "Exmo.", "Arq.", "Gen."]
ABBREVIATIONS = ["n.º", "p. ex.", "etc.", "pág.", "art.", "vol.", "cf.", "aprox.", "tel."]

NBSP, NNBSP, THIN = "\u00a0", "\u202f", "\u2009"
GROUP_SEPARATORS = [".", NBSP, NNBSP, THIN, " ", ""]
ODD_SPACES = [NBSP, NNBSP, THIN, "\t", "  ", " \u00a0"]
LINE_BREAKS = ["\n", "\n\n", "\r\n", "\r\n\r\n", "\r", "\u2028", "\u2029", "\f", "\n \n", "\v"]

COMBINING = ["e\u0301", "a\u0303o", "c\u0327a", "n\u0303", "o\u0302", "a\u0300", "u\u0308"]
EMOJI = ["👩\u200d💻", "👨\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "👍🏽", "🇵🇹", "🇧🇷", "⚽", "🔥"]
BIDI = ["\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067"]
BIDI += ["\u2068", "\u2069"]

# Every placeholder scheme the code has used: glossary terms (GLS<n>, a later hop's from 10000)
# and inline HTML tags (<x1>...</x1>, <x2/>).
LOOKALIKES = [
    "GLS1",
    "GLS2",
    "GLS3",
    "GLS10000",
    "GLS10001",
    "GLS0",
    "GLS01",
    "GLS1a",
    "xGLS1",
    "<x1>",
    "</x1>",
    "<x2/>",
    "<x3>",
    "</x3>",
    "<x1/>",
    "<x10>",
]

# Raw character references for HTML (written into the markup, not escaped).
ENTITIES_WITH = ["&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;", "&copy;", "&#169;", "&#xA9;"]
ENTITIES_WITH += ["&euro;", "&laquo;", "&raquo;", "&#8239;", "&eacute;", "&lt;x1&gt;"]
ENTITIES_WITHOUT = ["&amp", "&copy", "&#169", "&#xA9", "&nbsp", "&lt", "&gt", "&eacute"]
ENTITIES_WITHOUT += ["&amplt;b&ampgt;", "&lt;x1&gt", "&notin", "&notit;", "& amp;", "&"]

INLINE = [
    ("<b>", "</b>"),
    ("<em>", "</em>"),
    ("<strong>", "</strong>"),
    ('<a href="https://exemplo.pt/n?id=1&amp;p=2">', "</a>"),
    ('<span class="nome">', "</span>"),
    ("<i>", "</i>"),
]
VOIDS = ["<br>", "<br/>", '<img src="f.png" alt="foto">', "<wbr>"]


@dataclass(frozen=True)
class Insertions:
    """Which adversarial insertions a text gets."""

    lookalikes: bool = False
    repeats: bool = False


@st.composite
def numbers(draw, repeats: bool = False) -> str:
    """A figure as news copy writes it."""
    kind = draw(st.integers(0, 11))
    sep = draw(st.sampled_from(GROUP_SEPARATORS))
    group = st.integers(0, 999).map(lambda n: f"{n:03d}")
    if kind == 0:  # 1.000,50 / 1 000,50
        return f"{draw(st.integers(1, 999))}{sep}{draw(group)},{draw(st.integers(0, 99)):02d}"
    if kind == 1:  # 1 000 000 (groups; with repeats, equal groups "000 000 000")
        groups = draw(st.lists(group, min_size=1, max_size=4))
        if not repeats:
            groups = list(dict.fromkeys(groups))  # no group twice: see Insertions.repeats
        return str(draw(st.integers(1, 999))) + "".join(sep + g for g in groups)
    if kind == 2:
        return f"{draw(st.integers(0, 99))},{draw(st.integers(0, 9))}%"
    if kind == 3:
        return f"{draw(st.integers(0, 23))}h{draw(st.integers(0, 59)):02d}"
    if kind == 4:
        return f"{draw(st.integers(0, 9))}-{draw(st.integers(0, 9))}"
    if kind == 5:
        amount = f"{draw(st.integers(1, 999))},{draw(st.integers(1, 9))}"
        unit = draw(st.sampled_from(["mil milhões", "milhões", "mil", "M", "bi"]))
        cur = draw(st.sampled_from(["€", "€ ", "R$ ", "US$ ", "$"]))
        return f"{cur}{amount} {unit}"
    if kind == 6:
        return f"{draw(st.integers(1990, 2030))}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}"
    if kind == 7:
        return f"{draw(st.integers(1, 31))}/{draw(st.integers(1, 12)):02d}/{draw(st.integers(1990, 2030))}"
    if kind == 8:
        return f"{draw(st.integers(1, 999))}{NBSP}%"
    if kind == 9:
        return f"{draw(st.integers(1, 99))}.º"
    if kind == 10:
        return f"−{draw(st.integers(1, 40))},{draw(st.integers(0, 9))} °C"
    return str(draw(st.integers(0, 10**6)))


@st.composite
def tokens(draw, insertions: Insertions) -> str:
    """One token of running text: mostly a word, sometimes a figure or an oddity."""
    kind = draw(st.integers(0, 19))
    if kind <= 9:
        return draw(st.sampled_from(WORDS))
    if kind == 10:
        return draw(numbers(insertions.repeats))
    if kind == 11:
        return f"{draw(st.sampled_from(TITLES))} {draw(st.sampled_from(NAMES))}"
    if kind == 12:
        abbreviation = draw(st.sampled_from(ABBREVIATIONS))
        return f"{abbreviation} {draw(st.integers(1, 99))}" if "n" in abbreviation else abbreviation
    if kind == 13:
        return draw(st.sampled_from(COMBINING)) + draw(st.sampled_from(WORDS))
    if kind == 14:
        return draw(st.sampled_from(EMOJI))
    if kind == 15:
        mark = draw(st.sampled_from(BIDI))
        return mark + draw(st.sampled_from(WORDS + NAMES)) + draw(st.sampled_from(["", *BIDI]))
    if kind == 16:
        quote = draw(st.sampled_from([("«", "»"), ("“", "”"), ('"', '"'), ("‘", "’")]))
        inner = " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4)))
        return quote[0] + inner + quote[1]
    if kind == 17 and insertions.lookalikes:
        return draw(st.sampled_from(LOOKALIKES))
    if kind == 18 and insertions.repeats:
        word = draw(st.sampled_from(WORDS + ["1", "000", "GLS1", "muito", "não"]))
        space = draw(st.sampled_from(ODD_SPACES + [" "]))
        return space.join([word] * draw(st.integers(3, 5)))
    return draw(st.sampled_from(NAMES))


@st.composite
def sentences(draw, insertions: Insertions) -> str:
    words = draw(st.lists(tokens(insertions), min_size=2, max_size=16))
    spaces = [" "] + ODD_SPACES if insertions.repeats else [" "] * 12 + [NBSP]
    text = words[0][:1].upper() + words[0][1:]
    for word in words[1:]:
        text += draw(st.sampled_from(spaces)) + word
        if draw(st.integers(0, 9)) == 0:
            text += draw(st.sampled_from([",", ";", ":", " —", " –", " (sic)"]))
    end = draw(st.sampled_from([".", ".", ".", "!", "?", "…", "...", ".»", "”.", ""]))
    return text + end


@st.composite
def datelines(draw) -> str:
    place = draw(st.sampled_from(PLACES))
    day = draw(st.integers(1, 31))
    month = draw(st.sampled_from(MONTHS))
    agency = draw(st.sampled_from(AGENCIES))
    dash = draw(st.sampled_from(["—", "-", "–"]))
    return f"{place}, {day} {month} ({agency}) {dash}"


@st.composite
def paragraphs(draw, insertions: Insertions) -> str:
    parts = draw(st.lists(sentences(insertions), min_size=1, max_size=3))
    text = " ".join(parts)
    if draw(st.integers(0, 3)) == 0:
        text = draw(datelines()) + " " + text
    return text


def _has_repeated_ngram(text: str) -> bool:
    """An n-gram (n <= 6, whitespace-split) three or more times in a row: the trigger of the
    degenerate-output repair (quality.check_output) that `Insertions.repeats` is about."""
    words = text.split()
    for n in range(1, 7):
        for i in range(len(words) - 3 * n + 1):
            gram = words[i : i + n]
            if gram == words[i + n : i + 2 * n] == words[i + 2 * n : i + 3 * n]:
                return True
    return False


@st.composite
def news_texts(draw, insertions: Insertions = Insertions()) -> list[str]:
    """Paragraphs of a plain-text article, and the line breaks that follow each (the last one's
    may be empty): `"".join(...)` is the text."""
    paras = draw(st.lists(paragraphs(insertions), min_size=1, max_size=3))
    if draw(st.integers(0, 4)) == 0:  # a headline first
        paras.insert(0, " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=2, max_size=7))))
    out = []
    for i, p in enumerate(paras):
        last = i == len(paras) - 1
        tail = draw(st.sampled_from(["", "\n", "\r\n", " "])) if last else ""
        out.append(p + (tail if last else draw(st.sampled_from(LINE_BREAKS))))
    if draw(st.integers(0, 5)) == 0:
        out[0] = draw(st.sampled_from([" ", "\n", "\ufeff", "\t", "\r\n"])) + out[0]
    if not insertions.repeats:
        assume(not _has_repeated_ngram("".join(out)))
    return out


def plain_texts(insertions: Insertions = Insertions()) -> st.SearchStrategy[str]:
    return news_texts(insertions).map("".join)


@st.composite
def html_documents(draw, insertions: Insertions = Insertions(), entities: bool = False) -> str:
    """The same kind of article as HTML: each paragraph escaped into a <p>, some words in inline
    tags, void elements, comments; with `entities`, raw references with and without `;`."""
    paras = draw(news_texts(insertions))
    out = []
    if draw(st.booleans()):
        out.append(draw(st.sampled_from(["<!DOCTYPE html>\n", "<!-- notícia -->\n", "<div>\n"])))
    for para in paras:
        body, sep = para.rstrip(), para[len(para.rstrip()) :]
        words = re.split(r"( )", body)
        html_words = []
        for w in words:
            if w == " ":
                html_words.append(w)
                continue
            piece = html.escape(w, quote=False)
            roll = draw(st.integers(0, 14))
            if roll == 0:
                open_, close = draw(st.sampled_from(INLINE))
                piece = open_ + piece + close
            elif roll == 1:
                piece += draw(st.sampled_from(VOIDS))
            elif roll == 2 and entities:
                piece += " " + draw(st.sampled_from(ENTITIES_WITHOUT))
            elif roll == 3 and entities:
                piece += draw(st.sampled_from(ENTITIES_WITH))
            elif roll == 4:
                piece = draw(st.sampled_from(ENTITIES_WITH[:8])) + piece
            html_words.append(piece)
        out.append("<p>" + "".join(html_words) + "</p>" + (sep or "\n"))
    return "".join(out)


@st.composite
def glossaries(draw, text: str) -> dict[str, str]:
    """Identity entries (target == source) and do-not-translate ones (target "") for terms
    drawn from the text; empty sometimes."""
    words = sorted({w for w in re.findall(r"\w+", html.unescape(text)) if len(w) >= 3})
    if not words or draw(st.integers(0, 3)) == 0:
        return {}
    terms = draw(st.lists(st.sampled_from(words), min_size=1, max_size=4, unique=True))
    if draw(st.integers(0, 4)) == 0:  # a multi-word term, as it occurs in the text
        m = re.search(r"\w{3,} \w{3,}", text)
        if m:
            terms.append(m.group(0))
    return {t: draw(st.sampled_from([t, ""])) for t in terms}
