"""``bundle push`` and ``bundle pull``: bundles and receipts over HTTP (docs/REST.md).

Thin faces over :mod:`bundlekit.transport`: one line per file, ``--json`` for
scripts, exit 0 only when every file made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bundlekit.cli.app import app
from bundlekit.cli.keys import load_publics
from bundlekit.cli.output import JsonOpt, out, print_json, progress
from bundlekit.errors import EXIT_INVALID, EXIT_USAGE, CommandFailed
from bundlekit.naming import bundle_files


def _push_line(r) -> str:
    if not r.ok:
        return f"FAILED   {r.path}: {r.reason}"
    report = r.answer.get("report") or {}
    where = f"site {r.answer.get('site')} seq {r.answer.get('seq')}"
    if r.status == "imported":
        counts = ", ".join(
            f"{report.get(k, 0)} {k}" for k in ("applied", "duplicate", "stale", "conflict", "failed")
        )
        gaps = report.get("missing_seqs") or []
        tail = f"; waiting for seq {', '.join(map(str, gaps))}" if gaps else ""
        return f"IMPORTED {r.path}: {where}, {counts}{tail}"
    if r.status == "queued":
        return f"QUEUED   {r.path}: {where}, in the server's inbox"
    return f"HELD     {r.path}: {where}, already held by the server"


@app.command()
def push(
    url: Annotated[str, typer.Argument(help="The server's bundles URL, e.g. http://hub:8000/bundles/")],
    files: Annotated[list[Path], typer.Argument(help="Bundle files or folders of bundles.")],
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="BUNDLEKIT_TOKEN", help="Bearer token (or BUNDLEKIT_TOKEN)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Upload bundles to a server; resumes after a dropped connection.

    One line per file; exit 0 only if the server holds every file afterwards.
    """
    from bundlekit.transport import push as push_bundles

    targets = bundle_files(files)
    if not targets:
        raise CommandFailed("no bundle files found in " + ", ".join(map(str, files)))
    results = []
    for path in targets:
        total = path.stat().st_size if path.is_file() else None
        with progress(f"pushing {path.name}", total=total, unit="bytes") as advance:
            try:
                results.extend(push_bundles(url, [path], token=token, progress=advance))
            except ValueError as exc:
                raise CommandFailed(str(exc), EXIT_USAGE) from None
        if not json_out:
            out(_push_line(results[-1]))
    if json_out:
        print_json([r.to_dict() for r in results])
    if any(not r.ok for r in results):
        raise typer.Exit(EXIT_INVALID)


@app.command()
def pull(
    url: Annotated[str, typer.Argument(help="The bundles URL of the machine to pull from.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to download bundles into.")],
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="BUNDLEKIT_TOKEN", help="Bearer token (or BUNDLEKIT_TOKEN)."),
    ] = None,
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", "-t", help="Keep only bundles signed by these NAME.pub keys."),
    ] = None,
    receipts: Annotated[
        bool, typer.Option("--receipts", help="Download the server's receipts instead of bundles.")
    ] = False,
    site: Annotated[
        str | None, typer.Option("--site", help="With --receipts: only those for this site.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Download the bundles waiting in a machine's outbox; each is verified before it is kept.

    Files already in --out with the same SHA-256 are skipped.  With --receipts,
    fetch the server's receipts; `bundle import DIR` then checks and applies them.
    """
    from bundlekit.transport import pull_each

    trusted = load_publics(trust) if trust else None
    with progress("pulling", unit="bytes") as advance:
        try:
            results = pull_each(url, out_dir, token=token, trusted=trusted, progress=advance,
                                receipts=receipts, site=site)
        except ValueError as exc:
            raise CommandFailed(str(exc), EXIT_USAGE) from None
    if json_out:
        print_json([r.to_dict() for r in results])
    else:
        for r in results:
            if r.status == "pulled":
                out(f"PULLED   {r.path} ({r.size} bytes)")
            elif r.status == "present":
                out(f"PRESENT  {r.path}: already here, same SHA-256")
            else:
                out(f"FAILED   {r.name}: {r.reason}")
        if not results:
            out("no receipts on the server" if receipts else "nothing waiting in the outbox")
    if any(not r.ok for r in results):
        raise typer.Exit(EXIT_INVALID)

