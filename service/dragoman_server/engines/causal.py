"""Instruction (decoder-only chat) models with `transformers`: Qwen2.5-Instruct, EuroLLM-Instruct,
Llama 3.x Instruct, Gemma, TowerInstruct...

The engine's inputs are units of text (a paragraph, or part of one), as for the seq2seq engines;
the engine turns each into a prompt (prompts.py), and each output back into the unit's text,
without the wrappers a chat model adds (prompts.unwrap; each removal flagged `wrapper_removed`).
`prepare` and `finish` are those two steps on their own, for the continuous batcher; `generate`
runs a static batch of them with `model.generate`.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
)

from .. import prompts
from ..errors import ModelLoadError
from ..output_checks import LINE_BREAKS_JOINED, WRAPPER_REMOVED, CheckedOutput, OutputFlag
from ..settings import ModelConfig, ServerSettings
from .base import Engine, Generated, GenerationParams, ShouldStop
from .hf import decoding_config
from .loading import load_error, resolve_device, resolve_source
from .tokenization import find_window

log = logging.getLogger(__name__)

# A translation is about as long as its source; this lets it be half as long again, plus a little,
# and no longer: a model that starts chatting runs out of budget instead of on.
OUTPUT_RATIO = 1.5
OUTPUT_EXTRA = 16
# Prompt tokens beyond the measured overhead (tokenisation at the seam between template and text).
PROMPT_SLACK = 4


@dataclass(frozen=True)
class Prompt:
    """One unit ready for generation: its prompt ids, output budget and stop strings."""

    ids: list[int]
    text_tokens: int
    max_new_tokens: int
    min_new_tokens: int
    stop_strings: tuple[str, ...]


class _StopWhenAbandoned(StoppingCriteria):
    def __init__(self, should_stop: ShouldStop):
        self.should_stop = should_stop

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.should_stop(), dtype=torch.bool)


class InstructionEngine(Engine):
    """A decoder-only model with a chat template (or a `prompt_template`) and its tokenizer."""

    backend = "torch"
    instruct = True

    def __init__(self, config: ModelConfig, settings: ServerSettings):
        self.name = config.name
        self.task = config.task
        self.config = config
        self.device = resolve_device(config.device or settings.device)
        source, local_only = resolve_source(config, settings)
        started = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                source, revision=config.revision, local_files_only=local_only
            )
            if not getattr(tokenizer, "chat_template", None) and config.prompt_template is None:
                raise ModelLoadError(
                    f"model {config.name!r} ({config.source}): a decoder-only model without a "
                    "chat template -- use an instruction-tuned checkpoint, or set "
                    '`prompt_template` (e.g. "{text}") to prompt it as plain text'
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = AutoModelForCausalLM.from_pretrained(
                    source, revision=config.revision, local_files_only=local_only
                )
        except ModelLoadError:
            raise
        except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError...
            raise load_error(config, exc, local_only) from None
        if config.quantize:
            raise ModelLoadError(
                f"model {config.name!r} ({config.source}): quantize is for seq2seq models only"
            )
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        # Not only are fast tokenizers unsafe from several threads at once ("Already borrowed"):
        # `split_special_tokens` is a flag set on the shared Rust tokenizer for each call, so two
        # units prepared at once could read a chat template's "<|im_start|>" as plain text.
        self._tokenizer_lock = threading.Lock()
        # generate() reads the vocabulary for its stop strings while the model runs, unlocked.
        self._stop_tokenizer = copy.deepcopy(tokenizer)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # a batch's prompts end where generation starts
        self.load_seconds = time.perf_counter() - started
        self.generation_config = self._generation_config()
        self.eos_token_ids = _eos_ids(self.generation_config, tokenizer)
        self.prompts = prompts.PromptBuilder(
            tokenizer,
            self.task,
            system_prompt=config.system_prompt,
            prompt_template=config.prompt_template,
        )
        window = find_window(tokenizer, model.config)
        if config.context_window:
            window = min(window, config.context_window)
        self.window = window
        self.context = window  # see limit_context
        self.prompt_overhead = self._measure_overhead()
        if self.max_input_tokens < 1:
            raise ModelLoadError(
                f"model {config.name!r} ({config.source}): its window of {window} tokens leaves "
                f"no room for text beside a prompt of {self.prompt_overhead} tokens"
            )

    def _generation_config(self):
        """Greedy (a translation service wants the likeliest text, the same each time), with the
        model's configured overrides."""
        gc = copy.deepcopy(self.model.generation_config)
        gc.do_sample = False
        gc.temperature = gc.top_p = gc.top_k = None
        gc.num_beams = self.config.num_beams or 1
        if self.config.no_repeat_ngram_size is not None:
            gc.no_repeat_ngram_size = self.config.no_repeat_ngram_size
        if self.config.repetition_penalty is not None:
            gc.repetition_penalty = self.config.repetition_penalty
        gc.pad_token_id = self.tokenizer.pad_token_id
        return gc

    def _measure_overhead(self) -> int:
        """Prompt tokens around the text, for the longest prompt the configured languages make."""
        if self.task == "translation":
            cases = [(s, t) for s, t in self.config.pairs]
        else:
            cases = [(c, c) for c in self.config.languages]
        longest = 0
        for source, target in cases:
            user = self.prompts.user_message("", source, target, words=100_000, format="bullets")
            longest = max(longest, len(self.prompts.encode(user)))
        return longest + PROMPT_SLACK

    # -- sizes ------------------------------------------------------------------------------------

    @property
    def max_new_tokens(self) -> int:
        """The model's own cap on generated tokens."""
        cap = self.config.max_new_tokens or self.generation_config.max_new_tokens or self.window
        return min(cap, self.window)

    def limit_context(self, tokens: int) -> None:
        """Hold each request (prompt and output) to `tokens`, when its batcher's KV cache holds
        fewer than the window: units are then cut to fit it rather than refused."""
        self.context = min(self.window, tokens)

    @property
    def max_input_tokens(self) -> int:
        """The most text tokens one unit may have: its prompt and its output must fit the window
        (or the KV cache, when smaller) beside it (translation: an output budget proportional to
        the unit; summarisation: room for a summary of a quarter of the window, at most the
        model's cap)."""
        room = self.context - self.prompt_overhead
        if self.task == "translation":
            return math.floor((room - OUTPUT_EXTRA) / (1 + OUTPUT_RATIO))
        return room - self.summary_room

    @property
    def summary_room(self) -> int:
        return min(self.max_new_tokens, max(16, self.context // 4))

    def input_room(self, max_new_tokens: int) -> int:
        """Text tokens that fit beside a prompt and `max_new_tokens` of output."""
        return self.context - self.prompt_overhead - max_new_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        with self._tokenizer_lock:
            encoded = self.tokenizer(
                list(texts), add_special_tokens=False, split_special_tokens=True
            )
        return [len(ids) for ids in encoded["input_ids"]]

    # -- one unit ---------------------------------------------------------------------------------

    def prepare(self, text: str, params: GenerationParams) -> Prompt:
        """The unit's prompt and output budget; ValueError when it cannot fit the window."""
        with self._tokenizer_lock:
            ids = self.prompts.encode_unit(
                text,
                params.source_language,
                params.target_language,
                params.words,
                params.summary_format,
            )
        [text_tokens] = self.count_tokens([text])
        if params.max_new_tokens is not None:
            budget = params.max_new_tokens
        elif self.task == "translation":
            budget = math.ceil(OUTPUT_RATIO * text_tokens) + OUTPUT_EXTRA
        else:
            budget = self.summary_room
        budget = min(budget, self.max_new_tokens, self.context - len(ids))
        if budget < 1:
            raise ValueError(
                f"prompt of {len(ids)} tokens leaves no room in the window {self.context}"
            )
        minimum = min(params.min_new_tokens or 0, budget)
        return Prompt(ids, text_tokens, budget, minimum, prompts.stop_strings(text))

    def finish(self, source: str, output: str, input_tokens: int, output_tokens: int) -> Generated:
        """The unit's text from the model's answer: cut at a stop string, wrappers removed (and
        flagged)."""
        for stop in prompts.stop_strings(source):
            cut = output.find(stop)
            if cut >= 0:
                output = output[:cut]
        unwrapped = prompts.unwrap(source, output)
        text, flags = unwrapped.text, []
        if unwrapped.removed:
            detail = "removed the model's " + ", ".join(unwrapped.removed)
            flags.append(OutputFlag(WRAPPER_REMOVED, detail))
        lines = text.splitlines()
        if len(lines) > 1 and len(source.splitlines()) <= 1:
            text = " ".join(line.strip() for line in lines if line.strip())
            detail = f"the model broke a one-line unit into {len(lines)} lines; joined with spaces"
            flags.append(OutputFlag(LINE_BREAKS_JOINED, detail))
        if not flags:
            return Generated(text, input_tokens, output_tokens)
        return CheckedOutput(text, input_tokens, output_tokens, tuple(flags))

    # -- a static batch ---------------------------------------------------------------------------

    def generate(
        self, texts: Sequence[str], params: GenerationParams, should_stop: ShouldStop | None = None
    ) -> list[Generated]:
        prepared = [self.prepare(t, params) for t in texts]
        width = max(len(p.ids) for p in prepared)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p.ids)) + p.ids for p in prepared])
        attention = torch.tensor([[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in prepared])
        gc = decoding_config(
            self.generation_config,
            params,
            max(p.max_new_tokens for p in prepared),
            min(p.min_new_tokens for p in prepared) or None,
        )
        stops = set.intersection(*(set(p.stop_strings) for p in prepared))
        kwargs: dict = {"generation_config": gc}
        if stops:
            gc.stop_strings = sorted(stops)
            kwargs["tokenizer"] = self._stop_tokenizer
        if should_stop is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopWhenAbandoned(should_stop)])
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                **kwargs,
            )
        results = []
        for source, prompt, row in zip(texts, prepared, output[:, width:].tolist(), strict=True):
            row = row[: prompt.max_new_tokens]  # each unit's own budget, in a shared batch
            ended = next((i for i, t in enumerate(row) if t in self.eos_token_ids), len(row))
            with self._tokenizer_lock:
                text = self.tokenizer.decode(row[:ended], skip_special_tokens=True)
            results.append(self.finish(source, text, len(prompt.ids), ended))
        return results

    def close(self) -> None:
        self.model = None


def _eos_ids(generation_config, tokenizer) -> frozenset[int]:
    ids = generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list | tuple) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)
