"""Where a model comes from (Hub id or local directory), which device it runs on, and load errors."""

import errno
import os
from pathlib import Path

from ..errors import ModelLoadError
from ..settings import ModelConfig, ServerSettings
from ..sources import looks_local

__all__ = ["load_error", "looks_local", "offline", "resolve_device", "resolve_source"]


def offline(settings: ServerSettings) -> bool:
    """Whether Hub downloads are disabled (the `offline` setting or HF_HUB_OFFLINE)."""
    return settings.offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def resolve_source(config: ModelConfig, settings: ServerSettings) -> tuple[str, bool]:
    """The path or Hub id to pass to `from_pretrained`, and whether to stay off the network."""
    source = os.path.expanduser(config.source)
    if looks_local(source):
        if not Path(source).is_dir():
            raise ModelLoadError(
                f"model {config.name!r}: local directory {source!r} does not exist; "
                "fix `source` in the config (a directory written by save_pretrained, or a Hub id)"
            )
        return source, True
    return source, offline(settings)


def load_error(config: ModelConfig, exc: BaseException, local_only: bool) -> ModelLoadError:
    """One line naming the model, the cause and the fix, instead of a wall of traceback."""
    cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if len(cause) > 300:
        cause = cause[:300] + "..."
    unwritable = _unwritable_path(exc, config)
    if unwritable is not None:
        cause = f"cannot write {unwritable}: {exc.strerror}"
        fix = (
            "the ctranslate2 backend converts models into $DRAGOMAN_CT2_CACHE (default "
            "~/.cache/dragoman/ct2): point it at a writable directory, e.g. a volume when the "
            "root filesystem is read-only"
            if config.backend == "ctranslate2"
            else "the server's user must be able to write there (HF_HOME, DRAGOMAN_CT2_CACHE)"
        )
    elif looks_local(config.source):
        fix = "check that the directory holds a model and tokenizer saved with save_pretrained"
    elif local_only:
        # transformers says "We couldn't connect to 'https://huggingface.co'", which reads like a
        # network fault: no connection was attempted, downloads are off.
        if "connect" in cause or "offline" in cause.lower():
            cause = "offline (downloads are off) and not in the local Hugging Face cache"
        fix = (
            f"the cache ($HF_HOME, now {_hf_home()}) lacks it; run "
            "`dragoman models pull --config FILE` where the Hub is reachable (it downloads even "
            "with HF_HUB_OFFLINE=1), or set `source` to a local directory"
        )
    else:
        fix = (
            "check the Hub id and the network, or run `dragoman models pull --config FILE` "
            "beforehand, or set `source` to a local directory"
        )
    return ModelLoadError(f"model {config.name!r} ({config.source}): {cause} -- {fix}")


def _unwritable_path(exc: BaseException, config: ModelConfig) -> str | None:
    """The path a failed write names (a read-only root, a missing permission), if the load failed
    writing outside the model's own directory."""
    if not isinstance(exc, OSError) or not exc.filename or exc.errno not in _WRITE_ERRNOS:
        return None
    path = os.fsdecode(exc.filename)
    if looks_local(config.source):
        source = os.path.abspath(os.path.expanduser(config.source))
        if os.path.abspath(path).startswith(source.rstrip("/") + "/"):
            return None  # the model directory itself: the save_pretrained hint fits
    return path


_WRITE_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ENOSPC}


def _hf_home() -> str:
    from huggingface_hub import constants  # the cache it actually reads (set at its import)

    return constants.HF_HOME


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


def is_decoder_only(config: ModelConfig, settings: ServerSettings) -> bool:
    """Whether the checkpoint is a decoder-only (causal) language model: its config is not
    encoder-decoder and AutoModelForCausalLM knows its type. Reads config.json only."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    source, local_only = resolve_source(config, settings)
    try:
        model_config = AutoConfig.from_pretrained(
            source, revision=config.revision, local_files_only=local_only
        )
    except Exception as exc:  # the engine's own load reports it the usual way
        raise load_error(config, exc, local_only) from None
    return (
        not getattr(model_config, "is_encoder_decoder", False)
        and model_config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    )
