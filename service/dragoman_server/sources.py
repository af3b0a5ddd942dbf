"""A model's `source`: a Hugging Face Hub id, or a local directory written by save_pretrained.

Standard library only: `dragoman_server.pull` runs with this module alone (see pull.py).
"""

import re
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def looks_local(source: str) -> bool:
    """True for sources that can only be a directory: absolute, ./ ../ ~ paths, or an existing dir."""
    return (
        source.startswith(("/", "./", "../", "~"))
        or Path(source).is_dir()
        or not _HUB_ID.match(source)
    )
