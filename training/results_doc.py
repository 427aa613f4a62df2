"""docs/results.md, where the evaluation scripts write their measured sections in place."""
from __future__ import annotations

import pathlib

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results.md"


def write_section(text: str, tag: str, path: pathlib.Path = RESULTS) -> None:
    """Replace the block between `<!-- {tag}:begin -->` and `<!-- {tag}:end -->` in `path` by `text`
    (which carries both markers), or append `text` when the file has no such block yet."""
    old = path.read_text() if path.exists() else "# Results\n\nMeasured numbers; each section lists the exact commands.\n\n"
    b, e = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    if b in old and e in old:
        new = old[:old.index(b)] + text.rstrip("\n") + old[old.index(e) + len(e):]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
