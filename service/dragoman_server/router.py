"""Which model serves a language pair; pivots through a middle language when no direct model exists.

A source tag matches a configured source by itself or by a shorter prefix ("pt-PT" -> "pt"), and
then by a regional variant of the same language, in the configuration's order: a server
configured for "pt-BR:en" translates text given as "pt", or detected as Portuguese (detection
names languages, not regions). Targets match only by themselves or a prefix: the variant of the
output is the caller's choice, never guessed.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidArgument, NotFound
from .languages import base, fallbacks
from .settings import ModelConfig


@dataclass(frozen=True)
class Hop:
    """One model on a route, with the languages it translates between."""

    model: str
    source: str
    target: str


class Router:
    """Routes translation pairs and summarisation languages to configured models."""

    def __init__(self, models: Sequence[ModelConfig], pivot_language: str = "en"):
        self.models = {m.name: m for m in models}
        self.pivot = pivot_language
        self._pairs: dict[tuple[str, str], str] = {}
        self._summarizers: dict[str, str] = {}
        for m in models:
            if m.task == "translation":
                for pair in m.pairs:
                    self._pairs.setdefault(pair, m.name)
            else:
                for language in m.languages:
                    self._summarizers.setdefault(language, m.name)
        self._source_tags = list(dict.fromkeys(s for s, _ in self._pairs))

    def supported_pairs(self) -> list[str]:
        """Every pair a route exists for, pivots included, as 'pt-en' strings."""
        sources = {s for s, _ in self._pairs}
        targets = {t for _, t in self._pairs}
        found = []
        for s in sorted(sources):
            for t in sorted(targets):
                if s != t and self._find(s, t) is not None:
                    found.append(f"{s}-{t}")
        return found

    def _sources(self, source: str, configured) -> list[str]:
        """The configured tags `source` may use, best first (see the module docstring)."""
        tags = fallbacks(source)
        return tags + [c for c in configured if base(c) == base(source) and c not in tags]

    def _direct(self, source: str, target: str) -> Hop | None:
        for s in self._sources(source, self._source_tags):
            for t in fallbacks(target):
                name = self._pairs.get((s, t))
                if name is not None:
                    return Hop(name, source, target)
        return None

    def _find(self, source: str, target: str) -> list[Hop] | None:
        direct = self._direct(source, target)
        if direct:
            return [direct]
        if self.pivot not in (source, target):
            first = self._direct(source, self.pivot)
            second = self._direct(self.pivot, target)
            if first and second:
                return [Hop(first.model, source, self.pivot), Hop(second.model, self.pivot, target)]
        return None

    def route(self, source: str, target: str, model: str | None = None) -> list[Hop]:
        """The hops from source to target; raises InvalidArgument/NotFound naming the field."""
        if model:
            config = self.model(model)
            if config.task != "translation":
                raise InvalidArgument(
                    f"model: {model!r} is a {config.task} model, not translation",
                    reason="MODEL_TASK_MISMATCH",
                    field="model",
                )
            for s in self._sources(source, [s for s, _ in config.pairs]):
                for t in fallbacks(target):
                    if (s, t) in config.pairs:
                        return [Hop(model, source, target)]
            raise InvalidArgument(
                f"model: {model!r} does not translate {source}-{target}; it translates "
                + ", ".join(f"{s}-{t}" for s, t in config.pairs),
                reason="PAIR_UNSUPPORTED",
                field="model",
            )
        hops = self._find(source, target)
        if hops is None:
            raise InvalidArgument(
                f"no model translates {source} to {target}; supported pairs: "
                + (", ".join(self.supported_pairs()) or "none"),
                reason="PAIR_UNSUPPORTED",
                field="target_language",
            )
        return hops

    def has_route(self, source: str, target: str) -> bool:
        return self._find(source, target) is not None

    def summarizer(self, language: str, model: str | None = None) -> str | None:
        """The summarisation model for a language (None if there is none)."""
        if model:
            config = self.model(model)
            if config.task != "summarization":
                raise InvalidArgument(
                    f"model: {model!r} is a {config.task} model, not summarization",
                    reason="MODEL_TASK_MISMATCH",
                    field="model",
                )
            return model
        for code in self._sources(language, self._summarizers):
            if code in self._summarizers:
                return self._summarizers[code]
        return None

    def summary_languages(self) -> list[str]:
        return sorted(self._summarizers)

    def model(self, name: str) -> ModelConfig:
        try:
            return self.models[name]
        except KeyError:
            raise NotFound(
                f"model: {name!r} is not configured; configured models: {', '.join(self.models)}",
                reason="MODEL_NOT_FOUND",
                field="model",
            ) from None
