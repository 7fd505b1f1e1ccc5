"""Parts of docs/PERFORMANCE.md written by separate benchmark runs (e.g. the one inside
Krita), kept between HTML comment markers so that one run replaces its own part and
leaves the others as they were."""

from __future__ import annotations

import re
from pathlib import Path


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- section: {name} -->", f"<!-- /section: {name} -->"


def kept(text: str) -> str:
    """Every marked section of `text`, in order (what a full rewrite must carry over)."""
    return "\n\n".join(m.group(0) for m in re.finditer(
        r"<!-- section: (\S+) -->.*?<!-- /section: \1 -->", text, re.S))


def replace(path: Path, name: str, body: str) -> None:
    """Put `body` into the section `name` of the file (appended when it is new)."""
    start, end = _markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
