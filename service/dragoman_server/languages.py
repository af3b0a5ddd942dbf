"""Language codes: normalisation of BCP-47 / ISO 639 tags and their fallbacks."""

import re

from .errors import InvalidArgument

_TAG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")


def normalize(code: str, field: str) -> str:
    """Canonical form of a language tag: "pt_br" -> "pt-BR", "ZH-hant" -> "zh-Hant", "EN" -> "en".

    Raises InvalidArgument naming `field` for anything that is not a language tag.
    """
    tag = code.strip().replace("_", "-").lower()
    if not _TAG.match(tag):
        raise InvalidArgument(
            f"{field}: {code!r} is not a language code (e.g. 'en', 'pt', 'pt-BR')"
        )
    base, *rest = tag.split("-")
    parts = [base]
    for sub in rest:
        if len(sub) == 2 and sub.isalpha():
            parts.append(sub.upper())
        elif len(sub) == 4 and sub.isalpha():
            parts.append(sub.title())
        else:
            parts.append(sub)
    return "-".join(parts)


def fallbacks(code: str) -> list[str]:
    """The tag, then each shorter prefix: "zh-Hant-TW" -> ["zh-Hant-TW", "zh-Hant", "zh"]."""
    parts = code.split("-")
    return ["-".join(parts[:i]) for i in range(len(parts), 0, -1)]


def base(code: str) -> str:
    """The primary language subtag: "pt-BR" -> "pt"."""
    return code.split("-", 1)[0]


def parse_pair(pair: str, field: str) -> tuple[str, str]:
    """ "pt-en" or "pt-BR:en" -> ("pt", "en"). A ':' separates tags that contain '-' themselves."""
    if ":" in pair:
        source, _, target = pair.partition(":")
    else:
        source, sep, target = pair.partition("-")
        if not sep or "-" in target:
            raise InvalidArgument(
                f"{field}: {pair!r} is not a language pair; write 'pt-en', or 'pt-BR:en' for regional tags"
            )
    return normalize(source, field), normalize(target, field)
