"""How the report's tables write a number: percentages, p-values, ``n=k`` notes, statuses.

Numbers are percentages with two decimals, as in the paper; ``mean ± std`` (sample
standard deviation) where a cell has several seeds, with ``n=k`` whenever a value rests on
fewer runs than the fullest cell has (a seed unfinished, or a metric an older run did not
record), so nothing is averaged over a partial set silently. Every table module (tables,
summary, multilabel) writes through these.
"""

from __future__ import annotations

import numpy as np

from lmfloss.report.grid import MISSING, NOT_APPLICABLE, UNFINISHED, Cell, Comparison
from lmfloss.report.stats import MIN_SEEDS_T, mean_std

DASH = "—"
MINUS = "\u2212"  # a non-finite value's sign: ``−inf`` (finite numbers keep report.md's ASCII ``-``)


def nonfinite(value: float) -> str:
    """How every table writes a value that is not a finite number: ``NaN``, ``+inf``, ``−inf``."""
    if np.isnan(value):
        return "NaN"
    return "+inf" if value > 0 else f"{MINUS}inf"


def num(value: float, spec: str = ".2f", scale: float = 1.0) -> str:
    """``format(scale * value, spec)``, or :func:`nonfinite`'s word: one rule for every table
    (``num(0.0209, "+.2f", 100)`` -> ``"+2.09"``; ``num(nan, "+.2f")`` -> ``"NaN"``)."""
    value = float(value)
    return format(scale * value, spec) if np.isfinite(value) else nonfinite(value)


def pct(value: float | None) -> str:
    """``0.84614`` -> ``"84.61"``; ``None`` -> an em dash; NaN/±inf -> ``NaN``/``+inf``/``−inf``."""
    return DASH if value is None else num(value, ".2f", 100)


def signed_pct(value: float | None) -> str:
    """A difference in percentage points, its sign always written: ``+2.09``, ``-3.10``, ``NaN``."""
    return DASH if value is None else num(value, "+.2f", 100)


def interval_pct(ci: tuple[float, float] | None) -> str:
    """A signed interval in percentage points: ``[-0.40, +5.40]``."""
    return DASH if ci is None else f"[{signed_pct(ci[0])}, {signed_pct(ci[1])}]"


def spread_text(mean: float, std: float | None) -> str:
    """``mean ± std`` in percent; a non-finite mean is written alone (its spread says nothing)."""
    if std is None or not np.isfinite(mean):
        return pct(mean)
    return f"{pct(mean)} ± {num(std, '.2f', 100)}"


def fmt_p(p_value: float) -> str:
    """Three decimals; ``<0.001`` below that (the bootstrap's floor is ``1/(B+1)``)."""
    return "<0.001" if p_value < 0.001 else num(p_value, ".3f")


def status_text(cell: Cell, expected_n: int) -> str | None:
    """``missing``/``unfinished`` for a cell without finished runs, else ``None``."""
    if cell.status == MISSING:
        return "missing"
    if cell.status == NOT_APPLICABLE:  # a loss of another task (a table listing every loss)
        return "n/a"
    if cell.status == UNFINISHED:
        return f"unfinished ({len(cell.unfinished)} run{'s' if len(cell.unfinished) > 1 else ''})"
    return None


def seeds_note(cell: Cell, expected_n: int, n: int | None = None) -> str:
    """`` (n=2)``/`` (n=2; 1 unfinished)`` when a value rests on fewer runs than the fullest
    cell has, else empty.

    Args:
        cell: the cell the value is of.
        expected_n: the fullest cell's run count (:attr:`Grid.expected_n`).
        n: how many runs the value rests on (default: the cell's finished runs; fewer where
            some of them did not record the metric).
    """
    n = cell.n if n is None else n
    parts = []
    if n != expected_n:
        parts.append(f"n={n}")
    if cell.unfinished:
        parts.append(f"{len(cell.unfinished)} unfinished")
    return f" ({'; '.join(parts)})" if parts else ""


def metric_text(cell: Cell, metric: str, expected_n: int) -> str:
    """The display text of one metric of one cell."""
    status = status_text(cell, expected_n)
    if status:
        return status
    values = cell.values(metric)
    if not values:
        return DASH
    return spread_text(*mean_std(values)) + seeds_note(cell, expected_n, len(values))


def n_note(n: int, expected_n: int) -> str:
    """`` (n=2)`` for a statistic over ``n`` runs (or seed pairs) where the fullest cell has
    ``expected_n``, else empty."""
    return "" if n == expected_n else f" (n={n})"


def seed_p(comparison: Comparison) -> str:
    """The seed-level p of a comparison with its Holm-corrected value, or why there is none."""
    t = comparison.seed_test
    if t.p is None:
        return f"— (n={t.n} < {MIN_SEEDS_T} seeds)"
    return f"{fmt_p(t.p)} (Holm {fmt_p(t.p_holm)})" if t.p_holm is not None else fmt_p(t.p)
