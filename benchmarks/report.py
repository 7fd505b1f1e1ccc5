"""One row per figure: ours, its baseline measured in the same run, the goal."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    figure: str
    ours: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None  # None: reported, no goal

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.met]


def print_rows(title: str, rows: list[Row]) -> None:
    headers = ("figure", "ours", "baseline (same run)", "ratio", "goal", "")
    table = [headers] + [(r.figure, r.ours, r.baseline, r.ratio, r.goal, r.verdict)
                         for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    print(f"\n## {title}\n")
    for index, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
              + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
