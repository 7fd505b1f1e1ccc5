"""docs/PERFORMANCE.md is written by more than one benchmark run: each replaces its own
marked section and a full rewrite carries the others over."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import performance_file  # noqa: E402


def test_a_section_is_added_then_replaced_and_kept_by_a_rewrite(tmp_path: Path) -> None:
    doc = tmp_path / "PERFORMANCE.md"
    doc.write_text("# Performance\n\n## Engine\n\n| a | b |\n")
    performance_file.replace(doc, "krita-preview", "## Inside Krita\n\n| 1 |")
    performance_file.replace(doc, "other", "## Other\n\nx")
    performance_file.replace(doc, "krita-preview", "## Inside Krita\n\n| 2 |")
    text = doc.read_text()
    assert text.count("## Inside Krita") == 1 and "| 2 |" in text and "| 1 |" not in text
    assert text.startswith("# Performance\n\n## Engine") and "## Other" in text
    kept = performance_file.kept(text)
    assert kept.startswith("<!-- section: krita-preview -->") and "| 2 |" in kept
    assert "## Engine" not in kept and kept.endswith("<!-- /section: other -->")
