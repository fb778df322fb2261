"""The order of the gallery's rows: where an image sorts in the grid, and rows as runs of consecutive ones (one
removal or one redraw per run)."""

from __future__ import annotations

from collections.abc import Iterable

from app.store import ImageRecord


def grid_order(record: ImageRecord) -> tuple[float, int]:
    """Where a row sorts in the grid (``Store.images``: newest first, the later id first among equal times)."""
    return -record.created, -record.id


def row_runs(rows: Iterable[int]) -> list[tuple[int, int]]:
    """``rows`` as (first, last) runs of consecutive rows, the last run first: removed in that order, each run's
    rows are where they were when listed. One removal per run, not per row: each told the view to lay out again
    (3.1 s to unstar 500 images in the "★ only" view of 30,000)."""
    runs: list[tuple[int, int]] = []
    for row in sorted(set(rows)):
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))
    return runs[::-1]
