"""What the ``bundle`` commands print: lines, JSON, tables, progress bars.

Every line a command prints goes through :func:`out` or :func:`err`, and both pass
it through :func:`escape`: a file name is chosen by whoever made the file, and a
name holding a newline must not forge a second line (``OK  forged.bundle ...``)
that a script or a tired person reads as a verdict.  ``--json`` output is safe
by construction (JSON escapes control characters).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

#: The ``--json`` option every command shares.
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def escape(text: object) -> str:
    """``text`` on one line, with every control or invisible formatting character
    written as a Python escape (``\\n``, ``\\x1b``, ``\\u202e``).

    Newlines and carriage returns would start a forged line; escape sequences
    would drive the terminal; bidirectional overrides would show a name other
    than the one on disk.  Printable text, accents included, is left alone.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        ch if ch == " " or unicodedata.category(ch)[0] not in "CZ" else _escaped(ch)
        for ch in text
    )


def _escaped(ch: str) -> str:
    if ch in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def err(message: str) -> None:
    """One line on stderr: the only thing a person sees when something is wrong."""
    typer.echo(f"bundle: {escape(message)}", err=True)


def out(message: str | list[str] = "") -> None:
    """One line on stdout (escaped: see the module's docstring); a list is several
    lines, each escaped on its own (a line's details below it)."""
    for line in [message] if isinstance(message, str) else message:
        typer.echo(escape(line))


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=plain_json))


def plain_json(value: Any) -> Any:
    """JSON for reports (``--json``): readable scalars, not the typed record form."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, UUID | Decimal | Path):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def on_terminal() -> bool:
    """Tables for a person at a terminal; plain lines for pipes and files."""
    return sys.stdout.isatty()


def table(title: str, columns: list[str], rows: list[list]) -> None:
    """A rich table; every cell is escaped like a line.

    Only the first column (the name of a site or a file) may fold when the
    terminal is narrow; the others never wrap, so an 80-column terminal does not
    print ``duplicat/e``.  No rules between columns: they cost a column each.
    """
    from rich.console import Console
    from rich.table import Table

    cells = [[escape(v) for v in row] for row in rows]
    console = Console()
    # Every other column: as wide as its widest value and its header, or, when that
    # does not fit, as its longest header word (the header wraps between words).
    # The first column gets the rest (at least 8) and folds.
    values = [max((len(row[i]) for row in cells), default=0) for i in range(len(columns))]
    gaps = 2 * (len(columns) - 1)
    widths = [max(v, len(c)) for v, c in zip(values, columns, strict=True)]
    if sum(widths) + gaps > console.width:
        widths[1:] = [max([v] + [len(w) for w in c.split()])
                      for v, c in zip(values[1:], columns[1:], strict=True)]
    widths[0] = max(8, min(widths[0], console.width - sum(widths[1:]) - gaps))
    t = Table(title=title, title_justify="left", box=None, pad_edge=False,
              header_style="bold underline")
    for i, (c, w) in enumerate(zip(columns, widths, strict=True)):
        t.add_column(c, width=w, overflow="fold", justify="left" if i == 0 else "right")
    for row in cells:
        t.add_row(*row)
    console.print(t)


def interactive() -> bool:
    """Progress bars only for a person watching a terminal; scripts get quiet output."""
    return sys.stderr.isatty() and os.environ.get("BUNDLEKIT_NO_PROGRESS") != "1"


@contextmanager
def progress(
    description: str, total: int | None = None, unit: str = "records"
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a rich bar on a terminal, nothing otherwise.

    ``unit`` names what ``n`` counts: ``"records"`` (the rate reads records/s),
    ``"bytes"`` (sizes and MB/s) or another plural noun such as ``"files"``.
    """
    if not interactive():
        yield lambda n=1: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if unit == "bytes":
        done_column = DownloadColumn()

        def per_second(speed: float) -> str:
            return f"{speed / 1e6:,.1f} MB/s"

    else:
        done_column = MofNCompleteColumn()

        def per_second(speed: float) -> str:
            return f"{speed:,.0f} {unit}/s" if speed >= 10 else f"{speed:.1f} {unit}/s"

    columns = [
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        done_column,
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    ]
    # print() output meanwhile goes above the bar only when stdout is that terminal too;
    # stdout sent to a file or a pipe stays there.
    with Progress(
        *columns,
        transient=True,
        console=_stderr_console(),
        redirect_stdout=sys.stdout.isatty(),
    ) as bar:
        task = bar.add_task(escape(description), total=total, rate="")

        def advance(n: int = 1) -> None:
            bar.advance(task, n)
            speed = bar.tasks[task].speed
            if speed:
                bar.update(task, rate=per_second(speed))

        yield advance


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def paragraphs(doc: str | None) -> str | None:
    """A docstring as help text: each paragraph on one line (the terminal wraps it
    at its own width), paragraphs kept apart.  Source files wrap docstrings at
    100 columns; ``--help`` must not break a sentence there."""
    if not doc:
        return doc
    blocks = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in b.splitlines()) for b in blocks)


def reflow_help(app: typer.Typer) -> None:
    """Give every command and group of ``app`` (recursively) its help as paragraphs."""
    for info in app.registered_commands:
        info.help = paragraphs(info.help or (info.callback.__doc__ if info.callback else None))
    for group in app.registered_groups:
        sub = group.typer_instance
        if sub is not None:
            sub.info.help = paragraphs(sub.info.help)
            reflow_help(sub)


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 bundle``, ``2 bundles`` (``many`` for irregular plurals)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


__all__ = [
    "JsonOpt",
    "err",
    "escape",
    "interactive",
    "on_terminal",
    "out",
    "paragraphs",
    "plain_json",
    "plural",
    "print_json",
    "progress",
    "reflow_help",
    "table",
]
