"""The Django commands of ``bundle``: export, import, watch, receipt, prune, status.

bundlekit's CLI loads this module through the ``bundlekit.cli`` entry point and
calls :func:`register`.  The same command functions are mounted on
``manage.py bundle`` by ``management/commands/bundle.py``, so both spellings
behave alike.  This module imports Django only inside commands (``bundle
--help`` works on a machine without Django; the commands then say how to
install it).

To add a command, write its function (typer annotations, ``--json`` as
:data:`~bundlekit.cli.output.JsonOpt`) in its own module and list it in
:data:`COMMANDS`; both faces pick it up.

Each command is a thin layer: it reads the config, calls one function of
:mod:`django_adapter.workflow` (or status/forward), and prints its report as a
table on a terminal, plain lines otherwise, or JSON with ``--json``.  Failures
are typed errors that become one line and exit code 1.
"""

import inspect
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from bundlekit.cli.output import (
    JsonOpt,
    err,
    interactive,
    on_terminal,
    out,
    plural,
    print_json,
    progress,
    table,
)
from bundlekit.errors import EXIT_INVALID, EXIT_USAGE, CommandFailed, WriteFailed
from django_adapter.cli_options import (  # noqa: F401 - re-exported for command modules
    DatabaseOpt,
    ForwardOpt,
    IdentityOpt,
    ToOpt,
    TrustOpt,
    config,
)
from django_adapter.cli_review import COMMANDS as REVIEW_COMMANDS

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
    """Seal pending changes into the next bundle(s) and copy them to OUT.

    Every unacknowledged bundle that is not on OUT yet is copied there
    (atomically).  Transactions are marked exported, not consumed: only a
    receipt from the server does that.
    """
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
        n = len(report.present)
        where = (
            f"; {'the' if n == 1 else 'all'} {plural(n, 'unacknowledged bundle')} "
            f"{'is' if n == 1 else 'are'} already on {out_dir}"
            if n
            else ""
        )
        out(f"nothing to export: no pending changes{where}")
    else:
        _export_lines(report)
    for name in report.missing:
        err(f"{cfg.outbox / name}: not acknowledged yet but missing from the outbox; cannot resend it")
    for f in report.files_unavailable:
        err(f"{f['name']} ({f['sha256'][:12]}...): the server needs this file sent again, but "
            "this site no longer has it (its copy was pruned and its storage holds other bytes)")


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
        n = report.unacknowledged
        out(
            f"{plural(n, 'bundle')} {'awaits' if n == 1 else 'await'} a receipt from the server "
            f"({len(report.present)} already on the target)"
        )


# --------------------------------------------------------------------- import


def _file_line(f) -> list[str]:
    """The report of one file: its line, then a line per detail (one list item
    each, so no name or reason in them can start a line of its own)."""
    if f.kind == "receipt":
        if f.status == "rejected":
            return [f"REJECTED {f.file}: {f.reason}"]
        r = f.receipt or {}
        line = (
            f"RECEIPT  {f.file}: from {f.site}, {r.get('acknowledged', 0)} bundle(s) acknowledged "
            f"({r.get('transactions', 0)} transactions), {r.get('already', 0)} already"
        )
        if r.get("updated"):
            line += f" ({r['updated']} with new outcomes)"
        return ["; ".join([line, *f.messages]), *f.details]
    if f.status in ("rejected", "failed"):
        return [f"{f.status.upper():<8} {f.file}: {f.reason}"]
    if f.status == "own":
        return [f"own      {f.file}: {f.reason}"]
    line = (
        f"{f.status:<8} {f.file}: site {f.site} seq {f.seq}, {f.records} records: "
        f"applied {f.applied}, duplicate {f.duplicate}, stale {f.stale}, "
        f"conflict {f.conflict}, failed {f.failed}"
    )
    if f.missing_seqs:
        line += f"; waiting for seq {', '.join(map(str, f.missing_seqs))}"
    if f.retried:
        line += (f"; retried {sum(f.retried.values())} failed transaction(s) whose files "
                 f"arrived: applied {f.retried.get('applied', 0)}")
    if f.forwarded:
        line += f"; forwarded to {f.forwarded}"
    if f.code:
        line += f"; {f.reason}"
    return [line, *f.details]


def _print_run(run, json_out: bool) -> None:
    if json_out:
        print_json(run.to_dict())
    elif on_terminal() and run.files:
        rows, notes = [], []
        for f in run.files:
            name = Path(f.file).name
            if f.kind == "receipt":
                notes.extend(_file_line(f))
                continue
            if f.status in ("rejected", "failed", "own"):
                notes.extend(_file_line(f))
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


def _outcome_line(o) -> list[str]:
    if o.status == "done":
        first, *details = _file_line(o.result)
        return [first.replace(str(o.result.file), o.name, 1), *details]
    if o.status == "rejected":
        return [f"REJECTED {o.reason} (moved to {o.path.parent})"]
    return [f"retry    {o.name}: {o.reason}"]


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
        first, *details = _outcome_line(o)
        out([f"{stamp()}{first}", *details])

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

    Nothing without a receipt is ever deleted.
    """
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
    # bundles_unacknowledged lists seq numbers: say so, never print one as a count.
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


# ---------------------------------------------------------------------- files


def files(
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Remove the orphans (default: only list them).")
    ] = False,
    min_age: Annotated[
        float,
        typer.Option("--min-age", help="Hours a received copy must be old to count as an orphan."),
    ] = 24.0,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the attachment files nothing needs any more (server); --sweep removes them.

    An orphan is a file bundlekit stored that no row names, or a received copy
    older than --min-age hours, whose digest no pending, failed or unsettled
    transaction names (those may still be applied).  A dry run by default.
    """
    import datetime as dt

    from django_adapter.orphans import sweep as sweep_

    if min_age < 0:
        raise CommandFailed("--min-age must be 0 or more hours", EXIT_USAGE)
    report = sweep_(config(database=database).database, remove=sweep,
                    min_age=dt.timedelta(hours=min_age))
    if json_out:
        print_json(report.to_dict())
        return
    removed = {(o["kind"], o["name"]) for o in report.removed}
    for o in report.orphans:
        verb = "removed" if (o["kind"], o["name"]) in removed else "orphan"
        digest = "" if o["sha256"] in o["name"] else f"{o['sha256'][:12]}..., "
        out(f"{verb:<8} {o['kind']:<8} {o['name']} ({digest}{o['size']:,} bytes)")
    line = (f"{plural(len(report.orphans), 'orphan file')} ({report.orphan_bytes:,} bytes) of "
            f"{report.stored} stored and {report.received} received; "
            f"{plural(report.needed, 'file')} kept for transactions that may still apply")
    if sweep:
        line += f"; removed {len(report.removed)}"
    elif report.orphans:
        line += "; nothing removed (dry run: give --sweep to remove them)"
    out(line)


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


# ------------------------------------------------------------ enqueue-existing


def enqueue_existing(
    models: Annotated[
        list[str] | None,
        typer.Argument(help="Models as app_label.Model (default: every synced model)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count the rows; write nothing.")
    ] = False,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Enqueue rows saved before sync was added, as inserts for the next export.

    Capture only sees changes made after django_adapter was installed. This
    writes one insert transaction per existing row of the synced models, in
    dependency order; rows that have an outgoing transaction already are
    skipped, so a second run adds nothing. Run it once, when adding sync to a
    project that has data, before the first prune.
    """
    from django.conf import settings

    from django_adapter import enqueue

    alias = database or (getattr(settings, "BUNDLEKIT", None) or {}).get("DATABASE", "default")
    try:
        chosen = enqueue.synced_models(models)
    except (LookupError, ValueError) as exc:
        raise CommandFailed(f"MODELS: {exc}", EXIT_USAGE) from None
    total = enqueue.count_existing(chosen, alias) if interactive() else None
    with progress("enqueueing", total=total) as advance:
        report = enqueue.enqueue_existing(chosen, using=alias, dry_run=dry_run, progress=advance)
    if json_out:
        print_json(report.to_dict())
        return
    verb = "would enqueue" if dry_run else "enqueued"
    for label, n in report.enqueued.items():
        skipped = report.skipped[label]
        tail = f" ({skipped} had a transaction already)" if skipped else ""
        out(f"{verb} {plural(n, 'row')} of {label}{tail}")
    what = "nothing new to enqueue" if not report.total else (
        f"{verb} {plural(report.total, 'row')} as inserts"
        + ("" if dry_run else ": `bundle export` carries them")
    )
    out(what)


# ------------------------------------------------------------------- plumbing

#: (name, function, ...): the commands both ``bundle`` and ``manage.py bundle`` get
#: (anything after the function is ignored: older entries said "needs Django").
COMMANDS = [
    ("export", export),
    ("import", import_),
    ("watch", watch),
    ("receipt", receipt),
    ("prune", prune),
    ("status", status),
    ("recover", recover),
    ("files", files),
    ("enqueue-existing", enqueue_existing),
]
COMMANDS += REVIEW_COMMANDS

#: Commands that run Django's system checks first under ``bundle`` (``manage.py``
#: runs them before every command anyway).
CHECKED = frozenset({"export", "import", "watch", "enqueue-existing"})


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


def run_checks() -> None:
    """Django's system checks, as ``manage.py`` runs them before a command.

    A synced model that cannot sync (no ``natural_key()``, ...) is then an error
    before anything is read or written, not an export that finds "nothing to
    export".  Warnings are left to ``manage.py check``: the one that matters here
    (a key file not made yet, W102) becomes the command's own one-line error.
    """
    from django.core import checks

    found = checks.run_checks(include_deployment_checks=False)
    errors = [m for m in found if m.is_serious() and not m.is_silenced()]
    if errors:
        raise CommandFailed("; ".join(_check_line(m) for m in errors))


def _check_line(message) -> str:
    """``WHAT: problem (hint) (check id)``: the message first, as the setting or model
    it names is what a person looks for."""
    obj = message.obj
    label = str(getattr(getattr(obj, "_meta", None), "label", None) or obj or "")
    where = f"{label}: " if label and not message.msg.startswith(label) else ""
    hint = f" ({message.hint})" if message.hint else ""
    return f"{where}{message.msg}{hint} ({message.id})"


def with_settings(func, *, setup=None, checked: bool = False):
    """``func`` plus a ``--settings`` option.

    ``setup(settings)`` runs first (for ``bundle``: :func:`setup_django`; for
    ``manage.py bundle`` nothing, as ``manage.py`` has read ``--settings`` already
    and accepting it after the subcommand too is all that is needed), then the
    system checks if ``checked``.
    """
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
        settings = kwargs.pop("settings", None)
        if setup is not None:
            setup(settings)
        if checked:
            run_checks()
        return func(**kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()]
    wrapper.__signature__ = sig.replace(parameters=[*params, settings_param])
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    wrapper.__doc__ = func.__doc__
    wrapper.__name__ = func.__name__
    wrapper.__module__ = func.__module__
    return wrapper


def register(app: typer.Typer) -> None:
    """Entry point of the ``bundlekit.cli`` group: add our commands to ``bundle``.

    Without Django installed (a middleman laptop with the core only) they are
    hidden from ``bundle --help``; typed anyway, they say how to install it.
    """
    import importlib.util

    hidden = importlib.util.find_spec("django") is None
    for name, func, *_ in COMMANDS:
        app.command(name, hidden=hidden)(
            with_settings(func, setup=setup_django, checked=name in CHECKED)
        )


__all__ = ["CHECKED", "COMMANDS", "register", "run_checks", "setup_django", "with_settings"]
