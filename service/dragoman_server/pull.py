"""`dragoman models pull`: download every configured Hub model into the local Hugging Face cache.

This module needs only the standard library, `sources.py` and huggingface_hub, so that the
image's model stage can run it as `python -m dragoman_server.pull CONFIG` before the rest of the
code is copied in: a code change then reuses the model layer instead of downloading it again.
"""

import argparse
import os
import sys
import tomllib
from collections.abc import Iterable
from types import SimpleNamespace

from .sources import looks_local

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


def allow_downloads() -> None:
    """Downloads on, for this process: pulling is the one job meant to reach the Hub, also where
    serving is kept offline (the image sets HF_HUB_OFFLINE=1; `offline = true` in the config)."""
    os.environ["HF_HUB_OFFLINE"] = "0"
    if "huggingface_hub" in sys.modules:  # it reads the variable once, at import
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = False


def pull_models(models: Iterable) -> int:
    """Download each Hub model (name, source, revision; with progress bars); local directories
    are skipped. Returns the exit code: 1 when any model failed, else 0."""
    allow_downloads()
    from huggingface_hub import HfApi, snapshot_download

    failed = 0
    for model in models:
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


def models_in(path: str) -> list[SimpleNamespace]:
    """The `[[models]]` of a TOML config, read without the server's config loader (which the
    image's model stage does not have); `dragoman serve` validates the rest when it starts."""
    with open(path, "rb") as file:
        data = tomllib.load(file)
    models = []
    for index, entry in enumerate(data.get("models", [])):
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
            raise ValueError(f"{path}: models[{index}] has no `source`")
        name = entry.get("name", f"models[{index}]")
        models.append(
            SimpleNamespace(name=name, source=entry["source"], revision=entry.get("revision"))
        )
    return models


def main(argv: list[str] | None = None) -> int:
    """`python -m dragoman_server.pull CONFIG`: the image's model stage."""
    parser = argparse.ArgumentParser(
        prog="python -m dragoman_server.pull", description=__doc__.splitlines()[0]
    )
    parser.add_argument("config", help="TOML config whose [[models]] to pull")
    args = parser.parse_args(argv)
    try:
        models = models_in(args.config)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        print(f"dragoman: config error: {exc}", file=sys.stderr)
        return 2
    return pull_models(models)


if __name__ == "__main__":
    sys.exit(main())
