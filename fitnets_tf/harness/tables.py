"""The project's table writers: markdown (results.md, the sweeps' tables, `scripts/count.py --format=markdown`) and
aligned plain text (the benchmark's printed tables, `scripts/count.py`).

    >>> print(markdown_table(["model", "mults"], [["fitnet1", "30.2M"]]))
    | model | mults |
    |---|---|
    | fitnet1 | 30.2M |
    >>> print(text_table(["model", "mults"], [["fitnet1", "30.2M"]]))
    model    mults
    -------  -----
    fitnet1  30.2M
"""

_ALIGNMENTS = {"l": ":---", "c": ":---:", "r": "---:", None: "---", "": "---"}


def _escape(cell):
    """A cell as markdown text: a literal "|" would end the cell, so it is escaped."""
    return str(cell).replace("|", "\\|")


def markdown_table(header, rows, align=None):
    """A GitHub-flavoured markdown table, one line per row, without a trailing newline.

    Args:
        header: the column names.
        rows: sequences of cells, each as long as `header`; cells are converted with `str`, "|" is escaped.
        align: None (no alignment: "---"), or one of "l", "c", "r" per column (a string such as "lrr" or a
            sequence; None or "" for no alignment in that column).
    Returns:
        "| a | b |\\n|---|---|\\n| 1 | 2 |" for header ("a", "b") and rows [(1, 2)].
    """
    header = list(header)
    align = [None] * len(header) if align is None else list(align)
    if len(align) != len(header) or any(a not in _ALIGNMENTS for a in align):
        raise ValueError(f"align must give one of 'l', 'c', 'r' (or None) for each of the {len(header)} columns. "
                         f"Received: align={align!r}")
    lines = ["| " + " | ".join(map(_escape, header)) + " |", "|" + "".join(_ALIGNMENTS[a] + "|" for a in align)]
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"each row must have {len(header)} cells, one per column of {header}. Received: {row!r}")
        lines.append("| " + " | ".join(map(_escape, row)) + " |")
    return "\n".join(lines)


def text_table(header, rows):
    """An aligned plain-text table: columns left-aligned, two spaces apart, a line of dashes under the header,
    trailing spaces stripped, no trailing newline. Cells are converted with `str`."""
    header = list(header)
    rows = [list(row) for row in rows]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"each row must have {len(header)} cells, one per column of {header}. Received: {row!r}")
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
