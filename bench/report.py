"""``Results``: every sample the run loop takes, reduced to one median per (corpus,
operation, tool), with Comet/restic and Comet/borg ratios, as a printed table and as
JSON. Imports nothing from Comet."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1_000_000


@dataclass(frozen=True)
class Operation:
    key: str
    label: str
    unit: str  # "s", "ms", "bytes", "MB", "MB/s" or "reads"


OPERATIONS = (
    Operation("first_backup", "first backup", "s"),
    Operation("unchanged_backup", "unchanged re-run", "s"),
    Operation("changed_backup", "re-run, 1% files changed", "s"),
    Operation("restore", "full restore (tmpfs)", "s"),
    Operation("size_first", "repo size after 1st backup", "bytes"),
    Operation("size_final", "repo size after 3 backups", "bytes"),
    Operation("rss_first_backup", "peak RSS first backup", "MB"),
    Operation("rss_unchanged_backup", "peak RSS unchanged re-run", "MB"),
    Operation("rss_changed_backup", "peak RSS 1% changed re-run", "MB"),
    Operation("rss_restore", "peak RSS full restore", "MB"),
    Operation("ls", "ls -R of the snapshot", "s"),
    Operation("rss_ls", "peak RSS ls -R", "MB"),
    Operation("rss_ls_cli", "peak RSS ls -R, comet CLI", "MB"),
    Operation("find", "find a name in the snapshot", "s"),
    Operation("rss_find", "peak RSS find", "MB"),
    # Object reads (storage GETs) of a full restore into each target; every target reads
    # through the same batched, pack-ordered path, so these stay close to the first.
    *(
        Operation(f"reads_{key}", f"vault reads: restore {label}", "reads")
        for key, label in (
            ("directory", "--to DIR"),
            ("simulate", "--simulate"),
            ("program_per_file", "--program --per-file"),
            ("program_archive", "--program --as-archive"),
            ("tar", "--archive tar"),
            ("zip", "--archive zip"),
        )
    ),
    Operation("mount_first_byte", "mount: time to first byte", "ms"),
    Operation("mount_read", "mount: read every file", "s"),
    Operation("mount_read_rate", "mount: read MB/s (higher is better)", "MB/s"),
    Operation("mount_find", "mount: find | wc -l", "s"),
)
RATIOS = (("comet", "restic"), ("comet", "borg"))


@dataclass(frozen=True)
class Row:
    corpus: str
    operation: Operation
    medians: dict[str, float | None]
    ratios: dict[str, float | None]
    samples: dict[str, list[float]]

    def to_json(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "operation": self.operation.key,
            "label": self.operation.label,
            "unit": self.operation.unit,
            "median": self.medians,
            "ratios": self.ratios,
            "samples": self.samples,
        }


class Results:
    """Samples keyed by corpus, operation and tool. Sizes are stored in bytes, RSS
    in MB and times in seconds, as the table shows them."""

    def __init__(self, corpora: tuple[str, ...], tools: tuple[str, ...]) -> None:
        self.corpora = corpora
        self.tools = tools
        self._samples: dict[tuple[str, str, str], list[float]] = {}
        self.failures: list[str] = []  # steps a tool could not do (no sample taken)

    def add(self, corpus: str, operation: str, tool: str, value: float) -> None:
        if operation not in {op.key for op in OPERATIONS}:
            raise KeyError(operation)
        self._samples.setdefault((corpus, operation, tool), []).append(value)

    def add_rss(self, corpus: str, operation: str, tool: str, rss_bytes: int) -> None:
        self.add(corpus, operation, tool, rss_bytes / MB)

    def rows(self) -> list[Row]:
        rows = []
        for corpus in self.corpora:
            for op in OPERATIONS:
                samples = {t: self._samples.get((corpus, op.key, t), []) for t in self.tools}
                if not any(samples.values()):
                    continue  # not measured for this corpus (e.g. find on large files)
                medians = {t: statistics.median(v) if v else None for t, v in samples.items()}
                ratios = {f"{a}/{b}": _ratio(medians.get(a), medians.get(b)) for a, b in RATIOS}
                rows.append(Row(corpus, op, medians, ratios, samples))
        return rows

    def table(self) -> str:
        columns = [*self.tools, *(f"{a}/{b}" for a, b in RATIOS)]
        header = ["corpus", "operation", "unit", *columns]
        lines = [header]
        for row in self.rows():
            cells = [row.corpus, row.operation.label, row.operation.unit]
            cells += [_value(row.medians[t], row.operation.unit) for t in self.tools]
            cells += [_times(row.ratios[c]) for c in columns[len(self.tools) :]]
            lines.append(cells)
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = []
        for n, line in enumerate(lines):
            left = [line[i].ljust(widths[i]) for i in range(3)]
            right = [line[i].rjust(widths[i]) for i in range(3, len(header))]
            out.append("  ".join(left + right).rstrip())
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def growth_table(self, corpora: tuple[str, str], counts: tuple[int, int]) -> str:
        """Peak RSS of every measured operation at the smallest and the largest
        many-files corpus, per tool, and how many times it grew."""
        small, large = corpora
        header = ["operation", "tool", f"{counts[0]:,} files MB", f"{counts[1]:,} files MB"]
        lines = [[*header, "growth"]]
        for op in OPERATIONS:
            if not op.key.startswith("rss_"):
                continue
            for tool in self.tools:
                a = self._median(small, op.key, tool)
                b = self._median(large, op.key, tool)
                if a is None and b is None:
                    continue
                cells = [op.label.removeprefix("peak RSS "), tool, _value(a, "MB")]
                lines.append([*cells, _value(b, "MB"), _times(_ratio(b, a))])
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
        out = [
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
            for line in lines
        ]
        out.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(out)

    def _median(self, corpus: str, operation: str, tool: str) -> float | None:
        values = self._samples.get((corpus, operation, tool))
        return statistics.median(values) if values else None

    def write_json(self, path: Path, meta: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {**meta, "rows": [row.to_json() for row in self.rows()]}
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{round(value):,}"
    if unit in ("MB", "MB/s", "ms"):
        return f"{value:.1f}"
    if unit == "reads":
        return f"{round(value)}"
    return f"{value:.2f}"


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"
