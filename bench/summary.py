"""The one table `python -m bench` ends with: each Sandpiper figure beside its baseline from
the same run, and the ratio. Benchmarks `record` their headline figures as they finish."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    bench: str
    figure: str
    sandpiper: float
    baseline: float | None
    baseline_name: str
    unit: str
    target: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.sandpiper / self.baseline


ROWS: list[Row] = []


def record(
    bench: str,
    figure: str,
    sandpiper: float,
    baseline: tuple[str, float | None],
    unit: str,
    *,
    target: str = "",
) -> None:
    name, value = baseline
    ROWS.append(Row(bench, figure, sandpiper, value, name, unit, target))


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "µs":
        return f"{value:.0f} µs"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:,.0f} {unit}"


def table(rows: list[Row] | None = None) -> str:
    rows = ROWS if rows is None else rows
    header = ("benchmark", "figure", "sandpiper", "baseline (same run)", "", "ratio", "target")
    cells = [
        (
            row.bench,
            row.figure,
            _value(row.sandpiper, row.unit),
            row.baseline_name,
            _value(row.baseline, row.unit),
            "-" if row.ratio is None else f"{row.ratio:.2f}",
            row.target,
        )
        for row in rows
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell) + " |" for cell in cells]
    return "\n".join(lines)
