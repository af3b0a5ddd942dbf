"""Prompts for instruction (decoder-only chat) models, and the wrappers such models add.

A prompt is a system message (optional) and one user message, rendered with the tokenizer's chat
template (`apply_chat_template`); a model without a chat template is given the user message as
plain text. The user message comes from a template with named fields ({text}, {source_language},
{target_language}, {words}, {format}): the built-in one for the task, or the model's own
`prompt_template` (e.g. TowerInstruct's documented prompt).

Chat models like to wrap their answer ("Here is the translation:", quotes, a code fence, a closing
note). Stop strings and an output budget proportional to the input prevent most of it; `unwrap`
removes the rest by rule, only where the source does not itself have it, so real content is never
cut, and says what it removed (the data plane flags it `wrapper_removed`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import langcodes

from .languages import base

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "STOP_STRINGS",
    "PromptBuilder",
    "Unwrapped",
    "language_name",
    "unwrap",
]

DEFAULT_SYSTEM_PROMPT = (
    "You are a professional news translator and editor. Answer with the requested text only: "
    "no preamble, no quotes, no notes."
)

TRANSLATION_TEMPLATE = (
    "Translate the following {source_language} text into {target_language}. Keep its formatting, "
    "numbers and names; copy every tag such as <x1>, </x1> or <x2/> and every code of capital "
    "letters and digits such as GLS1 exactly, where it belongs. Answer with the translation "
    "only.\n\n{text}"
)

SUMMARY_TEMPLATE = (
    "Summarise the following news article in {target_language}, in at most {words} words, as "
    "{format}. Answer with the summary only.\n\n{text}"
)

FORMAT_WORDS = {"paragraph": "one paragraph", "bullets": "a list of bullet points"}

# Where a chat model starts a note after its answer; generation stops there (the source cannot
# hold these: `stop_strings` drops any a unit's source contains).
STOP_STRINGS = ("\n\nNote:", "\n\n(Note", "\n\nNota:", "\n\n---", "\n\n**Note")


@lru_cache(maxsize=256)
def language_name(code: str) -> str:
    """English name of a language tag: "pt" -> "Portuguese", "pt-BR" -> "Portuguese (Brazil)"."""
    try:
        return langcodes.Language.get(code).display_name("en")
    except (ValueError, LookupError):
        return code


def stop_strings(source: str) -> tuple[str, ...]:
    """The stop strings for one input: those its source does not contain itself."""
    return tuple(s for s in STOP_STRINGS if s not in source)


class PromptBuilder:
    """Renders one unit's prompt for a model: its template, system prompt and chat template."""

    def __init__(
        self,
        tokenizer,
        task: str,
        *,
        system_prompt: str | None,
        prompt_template: str | None,
    ):
        self.tokenizer = tokenizer
        self.task = task
        self.template = prompt_template or (
            TRANSLATION_TEMPLATE if task == "translation" else SUMMARY_TEMPLATE
        )
        # A model's own template comes with its own instructions: no built-in system prompt then.
        if system_prompt is None:
            system_prompt = "" if prompt_template is not None else DEFAULT_SYSTEM_PROMPT
        self.system_prompt = system_prompt
        self.chat = bool(getattr(tokenizer, "chat_template", None))

    def user_message(
        self,
        text: str,
        source: str | None,
        target: str | None,
        words: int | None = None,
        format: str | None = None,
    ) -> str:
        # Only the template's own fields are substituted: braces in `text` stay as they are.
        return self.template.format(
            text=text,
            source_language=language_name(source) if source else "",
            target_language=language_name(target) if target else "",
            words=words if words is not None else "",
            format=FORMAT_WORDS.get(format or "paragraph", format or ""),
        )

    def render(self, user: str) -> str:
        """The whole prompt as text (chat template applied, generation prompt added)."""
        if not self.chat:
            return user
        messages = [{"role": "user", "content": user}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def encode(self, user: str) -> list[int]:
        """Token ids of a whole prompt whose user message is `user` (all of it read as markup)."""
        return self.tokenizer(self.render(user), add_special_tokens=not self.chat).input_ids

    def encode_unit(
        self,
        text: str,
        source: str | None,
        target: str | None,
        words: int | None = None,
        format: str | None = None,
    ) -> list[int]:
        """Token ids of the prompt for one unit of text. The caller's `text` is tokenised as plain
        text: a "<|im_end|>" or "<|start_header_id|>" in an article is characters, never the
        model's control token (which would end the turn or forge a new one); only the template's
        own markup is read for special tokens."""
        tokenizer = self.tokenizer
        sentinel = _sentinel(text + self.template + self.system_prompt)
        rendered = self.render(self.user_message(sentinel, source, target, words, format))
        if rendered.count(sentinel) != 1:  # a chat template that rewrites content: plain path
            return self.encode(self.user_message(text, source, target, words, format))
        before, after = rendered.split(sentinel)
        return (
            tokenizer(before, add_special_tokens=not self.chat).input_ids
            + tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids
            + tokenizer(after, add_special_tokens=False).input_ids
        )


def _sentinel(avoid: str) -> str:
    """A marker absent from `avoid` (private-use characters, lengthened until absent)."""
    mark = "\ue000"
    while mark in avoid:
        mark += "\ue001"
    return mark


# -- wrappers -------------------------------------------------------------------------------------

# A first line that announces the answer: "Here is the translation:", "Sure! Here's the summary:",
# "Translation:", "Aqui está a tradução:". Bounded, ends in a colon.
_ANSWER = r"(?:translation|translated text|summary|version|tradução|resumo|texto traduzido)"
_PREAMBLE = re.compile(
    r"\A[ \t]*(?:(?:sure|certainly|of course|okay|ok)[!.,]?\s+)?"
    r"(?:(?:here(?: is|'s| are)|below is|aqui está|segue|eis)\b[^\n:]{0,60}?\b"
    + _ANSWER
    + r"\b[^\n:]{0,40}|(?:[\w-]+[ \t]+){0,3}"
    + _ANSWER
    + r")[ \t]*:[ \t]*\n?\s*",
    re.IGNORECASE,
)
_FENCE = re.compile(r"\A```[\w-]*[ \t]*\n(.*)\n```[ \t]*\Z", re.DOTALL)
_QUOTES = (('"', '"'), ("“", "”"), ("«", "»"), ("'", "'"), ("„", "“"), ("‘", "’"))
_NOTE = re.compile(
    r"\n\s*\n[ \t]*[(*]*\s*(?:note|nota|n\.b\.|translator's note|nota do tradutor)\b.*\Z",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class Unwrapped:
    """An output without its wrappers, and what was removed (empty: nothing)."""

    text: str
    removed: tuple[str, ...] = ()


def unwrap(source: str, output: str) -> Unwrapped:
    """`output` without the wrappers a chat model added around it.

    Each rule removes only what the source does not have itself (a source that starts with
    "Translation:" keeps it; a quoted source keeps its quotes), and never leaves an empty output:
    a rule that would is not applied.
    """
    text = output.strip()
    removed: list[str] = []
    src = source.strip()
    for _ in range(3):  # wrappers nest: a preamble, then a fence, then quotes
        before = text
        fence = _FENCE.match(text)
        if fence and not src.startswith("```") and fence.group(1).strip():
            text = fence.group(1).strip()
            removed.append("code fence")
        preamble = _PREAMBLE.match(text)
        if preamble and not _PREAMBLE.match(src) and text[preamble.end() :].strip():
            removed.append(f"preamble {preamble.group(0).strip()!r}")
            text = text[preamble.end() :].strip()
        note = _NOTE.search(text)
        if note and not _NOTE.search(src) and text[: note.start()].strip():
            removed.append(f"note {note.group(0).strip()[:60]!r}")
            text = text[: note.start()].rstrip()
        for opening, closing in _QUOTES:
            if (
                len(text) > 2
                and text.startswith(opening)
                and text.endswith(closing)
                and not (src.startswith(opening) and src.endswith(closing))
                and opening not in text[1:-1]
                and closing not in text[1:-1]
            ):
                text = text[1:-1].strip()
                removed.append(f"quotes {opening}{closing}")
                break
        if text == before:
            break
    return Unwrapped(text, tuple(removed))


def same_language(source: str | None, target: str | None) -> bool:
    return bool(source and target) and base(source) == base(target)
