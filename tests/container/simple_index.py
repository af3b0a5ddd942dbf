"""Writes a PEP 503 simple index (DIR/simple) for the wheels in DIR/files: the loopback index the
container test serves torch from. Usage: python simple_index.py DIR"""

import hashlib
import html
import re
import sys
from pathlib import Path


def project(filename: str) -> str:
    """The normalised project name of a wheel or sdist file name (PEP 503)."""
    name = re.split(r"-\d", filename, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def main(root: Path) -> None:
    files = sorted((root / "files").iterdir())
    by_project: dict[str, list[Path]] = {}
    for path in files:
        by_project.setdefault(project(path.name), []).append(path)
    simple = root / "simple"
    simple.mkdir(exist_ok=True)
    links = "".join(f'<a href="{name}/">{name}</a>\n' for name in sorted(by_project))
    (simple / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    for name, paths in by_project.items():
        (simple / name).mkdir(exist_ok=True)
        anchors = ""
        for path in paths:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            href = html.escape(f"../../files/{path.name}#sha256={digest}")
            anchors += f'<a href="{href}">{html.escape(path.name)}</a>\n'
        page = f"<!DOCTYPE html>\n<html><body>\n{anchors}</body></html>\n"
        (simple / name / "index.html").write_text(page)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
