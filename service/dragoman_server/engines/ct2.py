"""CTranslate2 engine: the same Hugging Face checkpoints, converted once, run by CTranslate2.

The checkpoint is converted with `ctranslate2.converters.TransformersConverter` into a cache
directory ($DRAGOMAN_CT2_CACHE, else ~/.cache/dragoman/ct2) named after a hash of the source,
revision, weights and compute type; later loads reuse it. The conversion is written to a temporary
directory and renamed into place, so a crash or a concurrent server never leaves a half-written model.
Tokenisation and decoding stay with the Hugging Face tokenizer, so the window, prefixes and
language tags are exactly the transformers engine's (see `tokenization`).
"""

import hashlib
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..errors import ModelLoadError
from ..settings import ModelConfig, ServerSettings
from . import tokenization
from .base import Generated, GenerationParams, ShouldStop
from .loading import load_error, looks_local, resolve_source

log = logging.getLogger(__name__)

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "config.json", "generation_config.json")


def cache_root() -> Path:
    env = os.environ.get("DRAGOMAN_CT2_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dragoman" / "ct2"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """'auto' -> int8 on CPU, float16 on CUDA; anything else as given."""
    if compute_type in ("auto", "", None):
        return "float16" if device.startswith("cuda") else "int8"
    return compute_type


def default_threads(device: str, threads: int) -> tuple[int, int]:
    """(inter_threads, intra_threads). On CPU, several single-threaded workers decoding parts of a
    batch in parallel beat one multi-threaded worker (2 cores: 82 vs 39 sentences/s at batch 32),
    so: one worker per core up to 4, the rest of the cores shared out as intra-op threads."""
    if device.startswith("cuda"):
        return 1, 1
    cores = threads or os.cpu_count() or 1
    inter = max(1, min(cores, 4))
    return inter, max(1, cores // inter)


def cache_key(source: str, revision: str | None, compute_type: str) -> str:
    """Names the converted model: source, revision, compute type, ctranslate2 version, and for a
    local directory the size and mtime of its weight files (a rebuilt model converts again)."""
    import ctranslate2

    parts = [source, revision or "", compute_type, ctranslate2.__version__]
    if looks_local(source) and Path(source).is_dir():
        for name in _WEIGHT_FILES:
            path = Path(source) / name
            if path.exists():
                stat = path.stat()
                parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", source.rstrip("/").split("/")[-1])[-48:] or "model"
    return f"{slug}-{digest}"


_loader_lock = threading.Lock()


def _register_loaders() -> None:
    """Two fixes to ctranslate2's Hugging Face loaders, registered once per process:

    - BART: transformers 5 dropped `config.normalize_before` (BART is post-norm); default it.
    - Marian: the loader assumes <pad> is the last token (as in the Opus-MT checkpoints) and drops
      the last embedding row; checkpoints with <pad> elsewhere (id 0, as in our test and benchmark
      models) would lose a real token. Drop the row only when it is <pad>.
    """
    from ctranslate2.converters import transformers as ct2

    loaders = ct2._MODEL_LOADERS
    if getattr(loaders.get("MarianConfig"), "_dragoman", False):
        return

    class BartLoader(ct2.BartLoader):
        _dragoman = True

        def get_model_spec(self, model):
            if not hasattr(model.config, "normalize_before"):
                model.config.normalize_before = False
            return super().get_model_spec(model)

    class MarianLoader(ct2.MarianMTLoader):
        _dragoman = True

        def get_model_spec(self, model):
            if model.config.pad_token_id == model.config.vocab_size - 1:
                return super().get_model_spec(model)
            model.config.normalize_before = False
            model.config.normalize_embedding = False
            return ct2.BartLoader.get_model_spec(self, model)

    if isinstance(loaders.get("BartConfig"), ct2.BartLoader):
        loaders["BartConfig"] = BartLoader()
    if isinstance(loaders.get("MarianConfig"), ct2.MarianMTLoader):
        loaders["MarianConfig"] = MarianLoader()


def convert(source: str, revision: str | None, compute_type: str, local_only: bool) -> Path:
    """The converted model directory, converting now if it is not cached yet."""
    target = cache_root() / cache_key(source, revision, compute_type)
    if (target / "model.bin").exists():
        return target
    import ctranslate2

    with _loader_lock:
        _register_loaders()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    quantization = None if compute_type in ("float32", "default") else compute_type
    started = time.perf_counter()
    previous = os.environ.get("HF_HUB_OFFLINE")
    try:
        if local_only:
            os.environ["HF_HUB_OFFLINE"] = "1"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converter = ctranslate2.converters.TransformersConverter(source, revision=revision)
            converter.convert(str(tmp / "model"), quantization=quantization, force=True)
        try:
            os.rename(tmp / "model", target)
        except OSError:  # another process converted it first: theirs is as good as ours
            if not (target / "model.bin").exists():
                raise
    finally:
        if local_only:
            if previous is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = previous
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "converted %s to %s (%s) in %.1fs",
        source,
        target,
        compute_type,
        time.perf_counter() - started,
    )
    return target


class CTranslate2Engine(tokenization.TokenizedEngine):
    """A seq2seq checkpoint run by a `ctranslate2.Translator`, tokenised by its HF tokenizer."""

    backend = "ctranslate2"

    def __init__(self, config: ModelConfig, settings: ServerSettings):
        import ctranslate2
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        super().__init__(config, settings)
        if config.quantize:
            raise ModelLoadError(
                f"model {config.name!r}: `quantize` is for the torch backend; "
                "with ctranslate2 set `compute_type` (auto, int8, float32, float16...)"
            )
        self.compute_type = resolve_compute_type(config.compute_type, self.device)
        source, local_only = resolve_source(config, settings)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
                tokenizer = AutoTokenizer.from_pretrained(
                    source, revision=config.revision, local_files_only=local_only
                )
            model_config = AutoConfig.from_pretrained(
                source, revision=config.revision, local_files_only=local_only
            )
            try:
                gc = GenerationConfig.from_pretrained(
                    source, revision=config.revision, local_files_only=local_only
                )
            except OSError:
                gc = GenerationConfig.from_model_config(model_config)
            # Before converting: a configuration error (a language without a code) costs no
            # conversion.
            self._set_up_tokenization(tokenizer, model_config, gc)
            self.model_dir = convert(source, config.revision, self.compute_type, local_only)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise load_error(config, exc, local_only) from None
        inter, intra = default_threads(self.device, settings.threads)
        self.inter_threads = config.inter_threads or inter
        self.intra_threads = config.intra_threads or intra
        try:
            self.translator = ctranslate2.Translator(
                str(self.model_dir),
                device="cuda" if self.device.startswith("cuda") else "cpu",
                device_index=int(self.device.split(":")[1]) if ":" in self.device else 0,
                compute_type=self.compute_type,
                inter_threads=self.inter_threads,
                intra_threads=self.intra_threads,
            )
        except Exception as exc:  # e.g. a compute type this CPU does not support
            raise load_error(config, exc, local_only) from None
        self.load_seconds = time.perf_counter() - started
        self.num_beams = config.num_beams or gc.num_beams or 1
        self.no_repeat_ngram_size = config.no_repeat_ngram_size or gc.no_repeat_ngram_size or 0
        self.repetition_penalty = config.repetition_penalty or gc.repetition_penalty or 1.0
        self.length_penalty = gc.length_penalty if gc.length_penalty is not None else 1.0
        suppress = list(gc.suppress_tokens or [])
        self._suppress = (
            [[t] for t in self.tokenizer.convert_ids_to_tokens(suppress)] if suppress else None
        )

    def _target_prefix(self, params: GenerationParams) -> list[str] | None:
        forced = self.generation_config.forced_bos_token_id
        if self.language_tokens:
            forced = self.language_tokens.generate_kwargs(params.target_language).get(
                "forced_bos_token_id", forced
            )
        if forced is None:
            return None
        return [self.tokenizer.convert_ids_to_tokens(forced)]

    def generate(
        self, texts: Sequence[str], params: GenerationParams, should_stop: ShouldStop | None = None
    ) -> list[Generated]:
        if not texts:
            return []
        inputs = tokenization.input_texts(
            texts, self.prefix, self.language_tokens, params.target_language
        )
        with self._tokenizer_lock:
            if self.language_tokens:
                self.language_tokens.set_source(params.source_language)
            ids = self.tokenizer(inputs, add_special_tokens=True)["input_ids"]
            tokens = [self.tokenizer.convert_ids_to_tokens(i) for i in ids]
            prefix = self._target_prefix(params)
        input_lengths = [len(t) for t in tokens]
        if max(input_lengths) > self._window:
            raise ValueError(
                f"input of {max(input_lengths)} tokens exceeds the window {self._window}"
            )
        budget = tokenization.token_budget(
            self.max_new_tokens,
            params,
            self.task,
            max(input_lengths),
            self.generation_config,
        )
        extra = len(prefix) if prefix else 0  # ctranslate2 counts the target prefix as decoded
        beams = params.num_beams if params.num_beams is not None else self.num_beams
        options = {
            # Several workers (inter_threads) decode parts of one batch in parallel.
            "max_batch_size": math.ceil(len(tokens) / self.inter_threads),
            "beam_size": beams,
            "length_penalty": self.length_penalty,
            "repetition_penalty": (
                params.repetition_penalty
                if params.repetition_penalty is not None
                else self.repetition_penalty
            ),
            "no_repeat_ngram_size": (
                params.no_repeat_ngram_size
                if params.no_repeat_ngram_size is not None
                else self.no_repeat_ngram_size
            ),
            "max_input_length": 0,  # never truncate: the window was checked above
            "max_decoding_length": budget.max_new_tokens + extra,
            "min_decoding_length": budget.min_new_tokens + extra,
            "suppress_sequences": self._suppress,
        }
        if should_stop is not None and beams == 1:
            options["callback"] = _Stopper(should_stop)
        results = self.translator.translate_batch(
            tokens, [prefix] * len(tokens) if prefix else None, **options
        )
        hypotheses = [r.hypotheses[0] for r in results]
        with self._tokenizer_lock:
            decoded = self.tokenizer.batch_decode(
                [self.tokenizer.convert_tokens_to_ids(h) for h in hypotheses],
                skip_special_tokens=True,
            )
        return [
            Generated(text=d.strip(), input_tokens=i, output_tokens=len(h) - extra)
            for d, i, h in zip(decoded, input_lengths, hypotheses, strict=True)
        ]

    def close(self) -> None:
        translator, self.translator = getattr(self, "translator", None), None
        if translator is not None:
            translator.unload_model()


class _Stopper:
    """The greedy-decoding callback: asks `should_stop` once per decoding step, not per token."""

    def __init__(self, should_stop: ShouldStop):
        self.should_stop = should_stop
        self.step = -1
        self.stop = False

    def __call__(self, result) -> bool:
        if result.step != self.step:
            self.step = result.step
            self.stop = bool(self.should_stop())
        return self.stop
