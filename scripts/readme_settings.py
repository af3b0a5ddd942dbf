"""Rewrite the README's settings table from settings.SETTINGS (the test checks it is current)."""

import re
from pathlib import Path

from dragoman_server.settings import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    text = README.read_text()
    table = settings_table()
    header = table.splitlines()[0]
    start = text.index(header)
    # The table runs until the first line that is not a table row.
    end = start + re.search(r"\n(?!\|)", text[start:]).start() + 1
    README.write_text(text[:start] + table.rstrip("\n") + "\n" + text[end:])


if __name__ == "__main__":
    main()
