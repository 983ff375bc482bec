"""Tables for the terminal that never cut an identifier.

rich shrinks every column of a table wider than the terminal and ends the cut ones with "…"; an id
cut that way cannot be copied into the next command (``suppliers new-key ID``). Identifier columns
here keep their whole width on one line, and the other columns wrap into what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The least width of a column that wraps (its header, if longer, is never cut either).
WRAPPED_MIN_WIDTH = 12


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    identifier: bool = False  # shown whole on one line, never cut or wrapped


def _least_width(column: Column, cells: list[str]) -> int:
    longest = max([len(column.header), *(len(cell) for cell in cells)])
    if column.identifier:
        return longest
    return max(len(column.header), min(longest, WRAPPED_MIN_WIDTH))


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, title: str | None = None) -> None:
    """Print ``rows`` under ``columns`` to stdout, as wide as the terminal (80 columns when not a
    terminal), or wider when the identifiers and the least width of the other columns need it."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    widths = [_least_width(column, [row[i] for row in rows]) for i, column in enumerate(columns)]
    for column, width in zip(columns, widths, strict=True):
        if column.identifier:
            table.add_column(column.header, no_wrap=True, min_width=width, overflow="ignore")
        else:
            table.add_column(column.header, min_width=width, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: a "[" in a name is not markup
    console = Console()
    needed = sum(widths) + 3 * len(widths) + 1  # each column: its padding and a border; one more border
    if console.width < needed:
        console = Console(width=needed)
    console.print(table)
