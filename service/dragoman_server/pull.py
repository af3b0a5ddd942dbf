"""`dragoman models pull`: download every configured Hub model into the local Hugging Face cache."""

import sys

from .engines.loading import looks_local
from .settings import Config

# Weights in formats the torch backend never reads.
_OTHER_FORMATS = [
    "*.h5",
    "*.msgpack",
    "*.ot",
    "tf_model*",
    "flax_model*",
    "rust_model*",
    "*.onnx",
    "onnx/*",
]


def pull_models(config: Config) -> int:
    """Download each Hub model (with progress bars); local directories are checked. Exit code."""
    from huggingface_hub import HfApi, snapshot_download

    failed = 0
    for model in config.models:
        if looks_local(model.source):
            print(f"{model.name}: local directory {model.source}, nothing to pull", file=sys.stderr)
            continue
        print(f"{model.name}: pulling {model.source}", file=sys.stderr)
        try:
            files = HfApi().list_repo_files(model.source, revision=model.revision)
            ignore = list(_OTHER_FORMATS)
            if any(f.endswith(".safetensors") for f in files):
                ignore.append("*.bin")
            path = snapshot_download(model.source, revision=model.revision, ignore_patterns=ignore)
        except Exception as exc:  # network, auth, unknown repo: one line each
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            print(f"{model.name}: cannot pull {model.source}: {first}", file=sys.stderr)
            failed += 1
            continue
        print(f"{model.name}: cached at {path}", file=sys.stderr)
    return 1 if failed else 0
