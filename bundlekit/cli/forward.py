"""``bundle forward``: a middleman checks bundles and passes the originals on.

Django-free and key-free (no decryption key is needed to verify), so a laptop
with bundlekit alone can carry bundles from a stick to a share or an inbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bundlekit.cli.app import app
from bundlekit.cli.keys import load_publics
from bundlekit.cli.output import JsonOpt, out, print_json
from bundlekit.errors import EXIT_INVALID, CommandFailed


@app.command()
def forward(
    files: Annotated[list[Path], typer.Argument(help="Bundles or folders of bundles.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where to copy them.")],
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", "-t", help="Accept only senders with these NAME.pub keys."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify bundles (no decryption key needed) and copy the valid ones, untouched, to OUT.

    Invalid files are refused with one line each and never copied.
    """
    from bundlekit.forward import forward_bundles

    trusted = load_publics(trust) if trust else None
    for f in files:
        if not f.exists():
            raise CommandFailed(f"{f}: no such file or folder")

    def line(r) -> None:
        if json_out:
            return
        if r.status == "refused":
            out(f"REFUSED   {r.file}: {r.reason}")
        else:
            out(f"{r.status:<9} {r.file}: site {r.site} seq {r.seq} -> {r.target}")

    results = forward_bundles(files, out_dir, trusted=trusted, on_file=line)
    if json_out:
        print_json([r.to_dict() for r in results])
    if not results:
        raise CommandFailed("no bundle files found in " + ", ".join(map(str, files)))
    if any(not r.ok for r in results):
        raise typer.Exit(EXIT_INVALID)
