"""The Django commands of ``bundle``: export, import, watch, receipt, prune, status,
and the Django-free ``forward``.

bundlekit's CLI loads this module through the ``bundlekit.cli`` entry point and
calls :func:`register`.  The same command functions are mounted on
``manage.py bundle`` by ``management/commands/bundle.py``, so both spellings
behave alike.  This module imports Django only inside commands: a middleman
laptop with bundlekit alone still gets ``bundle forward``.

Each command is a thin layer: it reads the config, calls one function of
:mod:`django_adapter.workflow` (or status/forward), and prints its report as a
table on a terminal, plain lines otherwise, or JSON with ``--json``.  Failures
are typed errors that become one line and exit code 1.
"""

import functools
import inspect
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from bundlekit.cli import (
    EXIT_INVALID,
    CommandFailed,
    err,
    interactive,
    out,
    print_json,
    progress,
)
from bundlekit.errors import WriteFailed

# ---------------------------------------------------------------------- options

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
IdentityOpt = Annotated[
    Path | None, typer.Option("--identity", "-i", help="This machine's NAME.key (overrides IDENTITY).")
]
ToOpt = Annotated[
    list[Path] | None,
    typer.Option("--to", "-r", help="A recipient's NAME.pub, repeatable (overrides RECIPIENTS)."),
]
TrustOpt = Annotated[
    list[Path] | None,
    typer.Option("--trust", "-t", help="A trusted NAME.pub, repeatable (overrides TRUSTED)."),
]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database", help="Database alias (overrides DATABASE).")
]
ForwardOpt = Annotated[
    Path | None,
    typer.Option("--forward", help="Copy accepted bundles, byte-identical, to this folder."),
]


def config(identity=None, to=None, trust=None, database=None, receipts_from=None):
    from django_adapter.conf import get_config

    return get_config(identity=identity, recipients=to, trusted=trust, database=database,
                      receipts_from=receipts_from)


def on_terminal() -> bool:
    return sys.stdout.isatty()


def table(title: str, columns: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        # The first column names the thing (a file, a site): never cut it short.
        t.add_column(c, no_wrap=i == 0, overflow="fold", justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[str(v) for v in row])
    Console().print(t)


# --------------------------------------------------------------------- export


def export(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="The stick (or folder) to write bundles to.")
    ],
    resend: Annotated[
        bool,
        typer.Option("--resend", help="Rewrite unacknowledged bundles that differ on the target."),
    ] = False,
    identity: IdentityOpt = None,
    to: ToOpt = None,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Seal pending changes into the next bundle(s) and copy every unacknowledged
    bundle that is not yet on OUT there (atomically).  Transactions are marked
    exported, not consumed: only a receipt from the server does that."""
    from django_adapter.workflow import export_to

    cfg = config(identity=identity, to=to, database=database)
    with progress("sealing", total=_pending(cfg) if interactive() else None) as advance:
        try:
            report = export_to(out_dir, config=cfg, resend=resend, progress=advance)
        except WriteFailed as exc:
            partial = getattr(exc, "report", None)
            if partial is None:
                raise
            if not json_out:
                _export_lines(partial)
            raise CommandFailed(
                f"{exc} (the bundles stay in the outbox; run export again with a working stick)"
            ) from None
    if json_out:
        print_json(report.to_dict())
        return
    if report.nothing_to_do:
        where = (
            f"; the {len(report.present)} unacknowledged bundles are already on {out_dir}"
            if report.present
            else ""
        )
        out(f"nothing to export: no pending changes{where}")
    else:
        _export_lines(report)
    for name in report.missing:
        err(f"{cfg.outbox / name}: not acknowledged yet but missing from the outbox; cannot resend it")


def _pending(cfg) -> int:
    """The bar's total for export: changes not sealed yet (one COUNT, for the bar only)."""
    from django_adapter.models import OutgoingTransaction

    return OutgoingTransaction.objects.using(cfg.database).filter(exported=False).count()


def _export_lines(report) -> None:
    for b in report.sealed:
        out(f"sealed   seq {b['seq']} ({b['records']} records): {b['file']}")
    for name in report.copied:
        out(f"copied   {Path(report.out_dir) / name}")
    if report.copied or report.sealed:
        out(
            f"{report.unacknowledged} bundle(s) await a receipt from the server "
            f"({len(report.present)} were already on the target)"
        )


# --------------------------------------------------------------------- import


def _file_line(f) -> str:
    if f.kind == "receipt":
        if f.status == "rejected":
            return f"REJECTED {f.file}: {f.reason}"
        r = f.receipt or {}
        line = (
            f"RECEIPT  {f.file}: from {f.site}, {r.get('acknowledged', 0)} bundle(s) acknowledged "
            f"({r.get('transactions', 0)} transactions), {r.get('already', 0)} already"
        )
        if r.get("updated"):
            line += f" ({r['updated']} with new outcomes)"
        return "\n".join(["; ".join([line, *f.messages]), *f.details])
    if f.status in ("rejected", "failed"):
        return f"{f.status.upper():<8} {f.file}: {f.reason}"
    if f.status == "own":
        return f"own      {f.file}: {f.reason}"
    line = (
        f"{f.status:<8} {f.file}: site {f.site} seq {f.seq}, {f.records} records: "
        f"applied {f.applied}, duplicate {f.duplicate}, stale {f.stale}, "
        f"conflict {f.conflict}, failed {f.failed}"
    )
    if f.missing_seqs:
        line += f"; waiting for seq {', '.join(map(str, f.missing_seqs))}"
    if f.forwarded:
        line += f"; forwarded to {f.forwarded}"
    if f.code:
        line += f"; {f.reason}"
    return "\n".join([line, *f.details])


def _print_run(run, json_out: bool) -> None:
    if json_out:
        print_json(run.to_dict())
    elif on_terminal() and run.files:
        rows, notes = [], []
        for f in run.files:
            name = Path(f.file).name
            if f.kind == "receipt":
                notes.append(_file_line(f))
                continue
            if f.status in ("rejected", "failed", "own"):
                notes.append(_file_line(f))
                continue
            # The file name is site-seq-digest: site and seq say which bundle it was.
            rows.append([f.site, f.seq, f.status, f.applied, f.duplicate, f.stale,
                         f.conflict, f.failed, ", ".join(map(str, f.missing_seqs)) or "-"])
            if f.reason:
                notes.append(f"{name}: {f.reason}")
            if f.details:
                notes.append(f"{name}: not applied:")
                notes.extend(f.details)
        if rows:
            table("import", ["site", "seq", "status", "applied", "dup", "stale",
                             "conflict", "failed", "gaps"], rows)
        for note in notes:
            out(note)
    else:
        for f in run.files:
            out(_file_line(f))
    if not json_out:
        for path in run.receipts_written:
            out(f"receipt  {path}")
    if not run.files and not json_out:
        out("nothing to import")


def import_(
    files: Annotated[list[Path], typer.Argument(help="Bundles, receipts, or folders of them.")],
    forward: ForwardOpt = None,
    identity: IdentityOpt = None,
    trust: TrustOpt = None,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import bundles (verify, dedupe, apply) and apply receipts; one report per file.

    On a server, one signed receipt per sending site is then written to
    RECEIPTS_OUT.  Exit code 1 if any file was refused or anything failed."""
    from django_adapter.workflow import import_paths, records_to_import

    cfg = config(identity=identity, trust=trust, database=database)
    for f in files:
        if not f.exists():
            raise CommandFailed(f"{f}: no such file or folder")
    total = records_to_import(files, config=cfg) if interactive() else None
    with progress("importing", total=total) as advance:
        run = import_paths(files, config=cfg, forward_dir=forward, progress=advance)
    _print_run(run, json_out)
    if not run.ok:
        raise typer.Exit(EXIT_INVALID)


def receipt(
    files: Annotated[list[Path], typer.Argument(help="Receipt files or folders of them.")],
    identity: IdentityOpt = None,
    trust: TrustOpt = None,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Apply receipts from the server: mark what it holds as delivered (prunable);
    what it does not hold stays, with the server's reason (see bundle status).
    --trust here names the receipt issuers (overrides RECEIPTS_FROM)."""
    from django_adapter.workflow import import_receipts

    cfg = config(identity=identity, receipts_from=trust, database=database)
    run = import_receipts(files, config=cfg)
    _print_run(run, json_out)
    if not run.ok:
        raise typer.Exit(EXIT_INVALID)


# ---------------------------------------------------------------------- watch


def _outcome_line(o) -> str:
    if o.status == "done":
        return _file_line(o.result).replace(str(o.result.file), o.name, 1)
    if o.status == "rejected":
        return f"REJECTED {o.reason} (moved to {o.path.parent})"
    return f"retry    {o.name}: {o.reason}"


_WAITING = {
    "settling": "still being written or copied (unchanged for less than --settle {settle:g} s)",
    "incomplete": "looks half-copied (the end of the bundle is missing); waiting for the rest",
    "retry": "its last attempt failed; tried again later",
}


def _waiting_line(w, settle: float) -> str:
    return f"waiting  {w.name}: {_WAITING[w.why].format(settle=settle)}; next look in {w.seconds:.0f} s"


def _json_line(data: dict) -> None:
    """One JSON object per line (a long-running watcher's log for scripts)."""
    import json

    from bundlekit.cli import plain_json

    out(json.dumps(data, sort_keys=True, default=plain_json))


def _outcome_dict(o) -> dict:
    data = {"name": o.name, "status": o.status, "path": str(o.path), "code": o.code,
            "reason": o.reason}
    if o.result is not None:
        data["report"] = o.result.to_dict()
    return data


def watch(
    folder: Annotated[
        Path | None, typer.Argument(help="The inbox folder (default: INBOX).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    settle: Annotated[
        float, typer.Option("--settle", help="Seconds a file must stay unchanged first.")
    ] = 5.0,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between scans.")] = 10.0,
    forward: ForwardOpt = None,
    identity: IdentityOpt = None,
    trust: TrustOpt = None,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import complete bundles dropped into the inbox, once each; write receipts.

    Files move to DIR/done/ or DIR/rejected/ (with a reason file); half-copied
    files wait (--once lists them).  A wrong configuration (a key file missing or
    unreadable) stops the watcher with one line and leaves every file where it
    is.  Several processes may watch one folder against one database.  --json:
    one document with --once, else one JSON object per line."""
    from django_adapter.workflow import WatchedInbox

    cfg = config(identity=identity, trust=trust, database=database)
    # Every key file the imports need, read now: a wrong one stops here, in one
    # line, before any file is touched.
    cfg.need_trusted()
    cfg.identity  # noqa: B018 - loading is the check
    cfg.revoked_keys  # noqa: B018
    folder = folder or cfg.inbox
    folder.mkdir(parents=True, exist_ok=True)
    inbox = WatchedInbox(
        folder, config=cfg, forward_dir=forward, settle_seconds=settle, poll_seconds=poll,
        watch=not once,
    )
    rejected = 0
    outcomes: list = []
    written: list = []

    def stamp() -> str:
        return "" if once else datetime.now().strftime("%Y-%m-%d %H:%M:%S ")

    def report(o) -> None:
        nonlocal rejected
        rejected += o.status == "rejected"
        outcomes.append(o)
        if json_out:
            if not once:
                _json_line(_outcome_dict(o))
            return
        out(f"{stamp()}{_outcome_line(o)}")

    def receipts(paths) -> None:
        written.extend(paths)
        for p in paths:
            if json_out and not once:
                _json_line({"receipt": str(p)})
            elif not json_out:
                out(f"{stamp()}receipt  {p}")

    inbox.on_outcome, inbox.on_receipts = report, receipts
    if once:
        inbox.scan_once()
        if json_out:
            print_json({
                "ok": not rejected,
                "files": [_outcome_dict(o) for o in outcomes],
                "waiting": [w.to_dict() for w in inbox.waiting],
                "receipts_written": [str(p) for p in written],
            })
        else:
            for w in inbox.waiting:
                out(_waiting_line(w, settle))
            if not outcomes and not inbox.waiting:
                out(f"nothing to import in {folder}")
        if rejected:
            raise typer.Exit(EXIT_INVALID)
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not json_out:
        out(f"watching {folder} (Ctrl-C to stop)")
    inbox.run(stop)


# ---------------------------------------------------------------- prune/status


def prune(database: DatabaseOpt = None, json_out: JsonOpt = False) -> None:
    """Delete outgoing transactions the server confirmed, and their outbox files.
    Nothing without a receipt is ever deleted."""
    from django_adapter.workflow import prune as prune_

    report = prune_(config=config(database=database))
    if json_out:
        print_json(report.to_dict())
        return
    line = f"pruned {report.transactions} confirmed transaction(s), {len(report.files)} outbox file(s)"
    if report.kept:
        line += f"; {report.kept} kept, the server does not hold them (see bundle status)"
    out(line)


def status(database: DatabaseOpt = None, json_out: JsonOpt = False) -> None:
    """Site: pending / exported / acknowledged; server: per sender, last seq, gaps."""
    from django_adapter.status import status as status_

    data = status_(config(database=database))
    if json_out:
        print_json(data)
        return
    s = data["site"]
    unacked = s["bundles_unacknowledged"]
    senders = data["senders"]
    sends = s["last_seq"] or s["pending"] or s["outbox_files"]
    without = (f"{len(unacked)} (seq {', '.join(map(str, unacked))})" if unacked else "none")
    kept = ", ".join(f"{k} {v}" for k, v in sorted(s["kept_by_outcome"].items()))
    if not sends and senders:
        pass  # a server that seals nothing: only the senders matter
    elif on_terminal():
        table(
            f"site {s['site']}",
            ["pending", "exported (no receipt yet)", "acknowledged", "kept (server does not hold)",
             "last seq", "bundles without a receipt", "outbox files"],
            [[s["pending"], s["exported"], s["acknowledged"], kept or "0", s["last_seq"],
              without, len(s["outbox_files"])]],
        )
    else:
        out(
            f"site {s['site']}: {s['pending']} pending, {s['exported']} exported (no receipt yet), "
            f"{s['acknowledged']} acknowledged, {s['kept']} kept here"
            f"{f' ({kept})' if kept else ''}; last seq {s['last_seq']}; "
            f"bundles without a receipt: {without}; "
            f"{len(s['outbox_files'])} file(s) in {s['outbox']}"
        )
    for t in s["kept_transactions"] if (sends or not senders) else []:
        key = "/".join(map(str, _flat(t["natural_key"]))) if t.get("natural_key") else t["pk"]
        out(f"  kept     {t['outcome']:<10} {t['model']} {key} (seq {t['seq']}, tx {t['tx_id']}): "
            f"{t['reason']}")
    if s["kept"] > len(s["kept_transactions"]):
        out(f"  ... and {s['kept'] - len(s['kept_transactions'])} more (bundle status --json)")
    if s.get("clock_note"):
        out(f"site {s['site']}: {s['clock_note']}")
    if not senders:
        return
    rows = []
    for r in senders:
        gaps = ", ".join(map(str, r["open_gaps"])) or "none"
        if r["open_gap_count"] > len(r["open_gaps"]):
            gaps += f" (+{r['open_gap_count'] - len(r['open_gaps'])} more)"
        seen = r["last_seen"].strftime("%m-%d %H:%M") if r["last_seen"] else "-"
        rows.append([r["site"], r["last_seq_applied"], gaps, r["waiting"], seen, r["failed"],
                     r["conflict"], r["stale"], r["quarantined_forks"]])
    if on_terminal():
        table("senders", ["site", "applied through", "open gaps", "waiting bundles", "last seen",
                          "failed", "conflict", "stale", "forks"], rows)
        _sender_notes(senders)
        return
    for site, last, gaps, waiting, seen, failed, conflict, stale, forks in rows:
        out(
            f"sender {site}: applied through seq {last}, open gaps: {gaps}, "
            f"waiting bundles {waiting}, last seen {seen}, failed {failed}, conflict {conflict}, "
            f"stale {stale}, quarantined forks {forks}"
        )
    _sender_notes(senders)


def _sender_notes(senders) -> None:
    """One line per thing a person should know about a site (schema, clock)."""
    for r in senders:
        for note in r.get("notes", ()):
            out(f"sender {r['site']}: {note}")


# -------------------------------------------------------------------- recover


def recover(
    sources: Annotated[
        list[Path],
        typer.Option("--from", "-f", help="The stick (or a folder `bundle pull` wrote) with the "
                     "server's newest receipts; repeatable."),
    ],
    identity: IdentityOpt = None,
    trust: TrustOpt = None,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """After a restore from backup (or on a new laptop with the old key): learn from
    the server's receipts what it holds of this site's chain, undo this site's
    bundles the server refused as forks (their changes are sealed again), and go
    on after the server's last bundle.  A site in line with the server is left as
    it is.  Then run `bundle export` as usual."""
    from django_adapter.recovery import recover as recover_

    for f in sources:
        if not f.exists():
            raise CommandFailed(f"{f}: no such file or folder")
    report = recover_(sources, config=config(identity=identity, trust=trust, database=database))
    if json_out:
        print_json(report.to_dict())
        return
    for line in report.skipped:
        err(f"skipped  {line}")
    out(f"read {len(report.receipts)} receipt(s): the server holds this site's chain "
        f"through seq {report.server_seq}")
    if not report.changed:
        out(f"nothing to recover: this site's chain (seq {report.chain_after}) is in line "
            f"with the server; {report.pending} change(s) pending")
        return
    for b in report.forked:
        out(f"undone   seq {b['seq']} ({b['records']} records): {b['file']} "
            "(the server refused it as a fork; its changes will be sealed again)")
    for path in report.moved:
        out(f"moved    {path}")
    out(f"chain moved from seq {report.chain_before} to seq {report.chain_after}; "
        f"{report.pending} change(s) pending: run `bundle export` to send them")


def _flat(value):
    """A natural key's parts, nested keys included, in order."""
    if isinstance(value, list | tuple):
        for v in value:
            yield from _flat(v)
    else:
        yield value


# -------------------------------------------------------------------- forward


def forward(
    files: Annotated[list[Path], typer.Argument(help="Bundles or folders of bundles.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where to copy them.")],
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", "-t", help="Accept only senders with these NAME.pub keys."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify bundles (no decryption key needed) and copy the valid ones, untouched,
    to OUT.  Invalid files are refused with one line each and never copied."""
    from bundlekit.cli import load_publics
    from django_adapter.forward import forward_bundles

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


# ------------------------------------------------------------------- plumbing

#: (name, function, needs Django)
COMMANDS = [
    ("export", export, True),
    ("import", import_, True),
    ("watch", watch, True),
    ("receipt", receipt, True),
    ("prune", prune, True),
    ("status", status, True),
    ("recover", recover, True),
    ("forward", forward, False),
]
from django_adapter.cli_review import COMMANDS as REVIEW_COMMANDS  # noqa: E402 - uses the above

COMMANDS += REVIEW_COMMANDS


def setup_django(settings_module: str | None) -> None:
    """``--settings`` or DJANGO_SETTINGS_MODULE, then ``django.setup()``.

    The current folder goes on ``sys.path`` as ``manage.py`` would have it, so
    ``bundle export --settings mysite.settings`` works from the project folder.
    """
    if settings_module:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    module = os.environ.get("DJANGO_SETTINGS_MODULE")
    if not module:
        raise CommandFailed(
            "this command needs Django settings: pass --settings yourproject.settings "
            "or set DJANGO_SETTINGS_MODULE"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        import django
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        raise CommandFailed("Django is not installed: pip install 'bundlekit[django]'") from None
    try:
        django.setup()
    except ImportError as exc:
        raise CommandFailed(f"cannot load the settings module {module!r}: {exc}") from None
    except ImproperlyConfigured as exc:
        raise CommandFailed(f"settings {module!r}: {exc}") from None


def database_errors(func):
    """A database that is missing, locked or unmigrated is one line, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from django.db import DatabaseError

        try:
            return func(*args, **kwargs)
        except DatabaseError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandFailed(f"database error: {first} (did you run `manage.py migrate`?)") from None

    return wrapper


def with_settings(func):
    """``func`` plus a ``--settings`` option that sets Django up before it runs."""
    inner = database_errors(func)
    sig = inspect.signature(func, eval_str=True)
    settings_param = inspect.Parameter(
        "settings",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--settings",
                help="Django settings module (default: $DJANGO_SETTINGS_MODULE).",
            ),
        ],
    )

    def wrapper(**kwargs):
        setup_django(kwargs.pop("settings", None))
        return inner(**kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()]
    wrapper.__signature__ = sig.replace(parameters=[*params, settings_param])
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    wrapper.__doc__ = func.__doc__
    wrapper.__name__ = func.__name__
    wrapper.__module__ = func.__module__
    return wrapper


def register(app: typer.Typer) -> None:
    """Entry point of the ``bundlekit.cli`` group: add our commands to ``bundle``."""
    for name, func, needs_django in COMMANDS:
        app.command(name)(with_settings(func) if needs_django else func)


__all__ = ["COMMANDS", "register", "setup_django"]
