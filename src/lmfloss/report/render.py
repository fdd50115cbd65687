"""A small table type rendered three ways: Markdown, CSV and LaTeX (booktabs).

Cells are display strings; ``best`` marks cells shown in bold (``**x**`` in
Markdown, ``\\textbf{x}`` in LaTeX, unmarked in CSV so it stays machine-readable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lmfloss.fileio import atomic_write_text, csv_text

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_TEXT = {
    "±": r"$\pm$", "Δ": r"$\Delta$", "α": r"$\alpha$", "β": r"$\beta$", "−": "-", "—": "---",
    "<": r"$<$", ">": r"$>$",
}


@dataclass
class Table:
    """A rendered-to-text table.

    Attributes:
        name: File stem (``table2_efficientnet_v2_s``).
        title: Caption.
        columns: Header cells.
        rows: Display cells, ``len(columns)`` per row.
        best: ``(row, column)`` indices shown in bold.
        notes: Lines printed under the table.
        wrap: Columns whose long text may wrap on the page (the HTML report).
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    best: set[tuple[int, int]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    wrap: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown with a bold caption and notes below."""

        def cell(i: int, j: int, text: str) -> str:
            text = text.replace("|", "\\|")
            return f"**{text}**" if (i, j) in self.best and text else text

        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in self.columns) + " |")
        aligns = ["---" if j < self.n_label_columns() else "---:" for j in range(len(self.columns))]
        lines.append("| " + " | ".join(aligns) + " |")
        for i, row in enumerate(self.rows):
            lines.append("| " + " | ".join(cell(i, j, t) for j, t in enumerate(row)) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"{note}  " for note in self.notes)
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The header and display cells, no markup."""
        return csv_text(self.columns, self.rows)

    def to_latex(self) -> str:
        """A ``table`` environment with ``booktabs`` rules; best cells in ``\\textbf``."""
        spec = "".join("l" if j < self.n_label_columns() else "r" for j in range(len(self.columns)))
        lines = [
            r"\begin{table}[htbp]",
            r"\centering",
            # LaTeX numbers tables itself: drop a leading "Table 2." from the caption.
            rf"\caption{{{latex_escape(re.sub(r'^Table [0-9]+[.] *', '', self.title))}}}",
            rf"\label{{tab:{self.name}}}",  # underscores are fine in labels
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            " & ".join(latex_escape(c) for c in self.columns) + r" \\",
            r"\midrule",
        ]
        for i, row in enumerate(self.rows):
            cells = []
            for j, text in enumerate(row):
                text = latex_escape(text)
                cells.append(rf"\textbf{{{text}}}" if (i, j) in self.best and text else text)
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        for note in self.notes:
            lines.append(rf"\par\footnotesize {latex_escape(note)}")
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path) -> list[Path]:
        """Write ``<name>.md``, ``<name>.csv`` and ``<name>.tex`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix, text in ((".md", self.to_markdown()), (".csv", self.to_csv()), (".tex", self.to_latex())):
            path = folder / f"{self.name}{suffix}"
            atomic_write_text(text, path)
            paths.append(path)
        return paths

    def n_label_columns(self) -> int:
        """How many leading columns are labels (left-aligned; the page repeats them down a group)."""
        # Leading columns whose every cell is non-numeric text are labels (left-aligned).
        count = 0
        for j in range(len(self.columns)):
            if all(not _looks_numeric(row[j]) for row in self.rows if j < len(row)):
                count += 1
            else:
                break
        return max(count, 1)


def _looks_numeric(text: str) -> bool:
    head = text.strip().split(" ")[0].lstrip("+-−*")
    return head.replace(".", "", 1).isdigit()


def latex_escape(text: str) -> str:
    """Escape LaTeX specials; ``±``, ``Δ``, ``α``, ``β`` become math symbols."""
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    for plain, latex in _LATEX_TEXT.items():
        out = out.replace(plain, latex)
    return out
