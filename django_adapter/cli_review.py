"""``bundle review``, ``bundle retry`` and ``bundle resolve``: the server's review
queue on the command line (the library is :mod:`django_adapter.review`).

``retry`` and ``resolve`` write the senders' receipts afterwards (to
RECEIPTS_OUT, when set), so what a person decided travels back to the site with
the next stick or ``bundle pull``.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from bundlekit.cli import EXIT_INVALID, EXIT_USAGE, CommandFailed, out, print_json
from bundlekit.cli.output import JsonOpt, on_terminal, table
from django_adapter.cli_options import DatabaseOpt, config

#: Non-applied transactions described one by one (the count is always given).
SHOWN = 20


def review(
    site: Annotated[str | None, typer.Option("--site", help="Only this sending site.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Only this model (app_label.ModelName).")
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option("--outcome", help="failed, conflict, stale, waiting or quarantined."),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Show the oldest N.")] = None,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List every transaction that needs a person: failed, conflict, stale
    (superseded), waiting on a gap, or in a quarantined fork; oldest first."""
    from django_adapter.review import queue

    cfg = config(database=database)
    items = queue(cfg.database, site=site, model=model, outcome=outcome, limit=limit)
    if json_out:
        print_json({"count": len(items), "items": [i.to_dict() for i in items]})
        return
    if not items:
        out("nothing to review")
        return
    rows = [
        [i.outcome, i.site, i.model or "-", _key(i), f"{i.age_days}d", i.tx_id or i.bundle_id,
         i.reason]
        for i in items
    ]
    if on_terminal():
        table(f"review: {len(items)} transaction(s)",
              ["outcome", "site", "model", "natural key", "age", "tx id", "reason"], rows)
        return
    for outcome_, site_, model_, key, age, ident, reason in rows:
        out(f"{outcome_:<11} {site_} {model_} {key} ({age} old) tx {ident}: {reason}")
    out(f"{len(items)} transaction(s) to review")


def _key(item) -> str:
    if item.natural_key is not None:
        return "/".join(map(str, _flat(item.natural_key)))
    return item.pk or "-"


def _flat(value):
    if isinstance(value, list | tuple):
        for v in value:
            yield from _flat(v)
    else:
        yield value


def retry(
    tx_ids: Annotated[
        list[str] | None, typer.Argument(help="Transaction ids (default: every failed one).")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Why (recorded with the retry).")] = "",
    sender: Annotated[
        str | None, typer.Option("--sender", help="Whose transaction: a site name or key "
                                 "fingerprint (needed when two senders used the same id).")
    ] = None,
    who: Annotated[
        str | None, typer.Option("--who", help="Who retries (default: the login name).")
    ] = None,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Apply failed transactions again after the cause was fixed (a missing
    reference arrived, the server was migrated); then write the senders' receipts.
    Exit code 1 if any still fails."""
    from django_adapter import review as review_

    cfg = config(database=database)
    ids = list(tx_ids) if tx_ids else None
    failed_before = None if ids else [
        i.tx_id for i in review_.queue(cfg.database, outcome="failed")
    ]
    result = review_.retry(ids, using=cfg.database, who=who or _login(), note=note, sender=sender)
    touched = review_.senders_of(ids if ids is not None else failed_before, cfg.database,
                                 sender=sender)
    receipts = _receipts(cfg, touched)
    if json_out:
        print_json({**result.to_dict(), "receipts_written": receipts})
    else:
        total = result.applied + result.stale + result.failed + result.deleted_missing
        out(
            f"retried {total} transaction(s): applied {result.applied + result.deleted_missing}, "
            f"superseded {result.stale}, failed {result.failed}"
        )
        _reasons(result.messages)
        for path in receipts:
            out(f"receipt  {path}")
    if result.failed:
        raise typer.Exit(EXIT_INVALID)


def resolve(
    tx_id: Annotated[str, typer.Argument(
        help="The transaction id, or a quarantined bundle's id (from bundle review).")],
    keep_server: Annotated[
        bool, typer.Option("--keep-server", help="Keep the server's version.")
    ] = False,
    take_site: Annotated[
        bool, typer.Option("--take-site", help="Apply the site's version, even over a newer one.")
    ] = False,
    discard: Annotated[bool, typer.Option("--discard", help="Drop the site's change.")] = False,
    note: Annotated[str, typer.Option("--note", help="Why (required; recorded).")] = "",
    sender: Annotated[
        str | None, typer.Option("--sender", help="Whose transaction: a site name or key "
                                 "fingerprint (needed when two senders used the same id).")
    ] = None,
    who: Annotated[
        str | None, typer.Option("--who", help="Who decides (default: the login name).")
    ] = None,
    database: DatabaseOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Settle one transaction of the review queue, recorded with who, when and why;
    the outcome goes back to the site in the next receipt (written now)."""
    from django_adapter import review as review_

    chosen = [c for c, on in (("keep-server", keep_server), ("take-site", take_site),
                              ("discard", discard)) if on]
    if len(chosen) != 1:
        raise CommandFailed("choose exactly one of --keep-server, --take-site, --discard",
                            EXIT_USAGE)
    if not note.strip():
        raise CommandFailed("--note TEXT is required: say why", EXIT_USAGE)
    cfg = config(database=database)
    decision = review_.resolve(tx_id, chosen[0], note=note, who=who or _login(),
                               using=cfg.database, sender=sender)
    receipts = _receipts(cfg, review_.senders_of([decision.tx_id], cfg.database,
                                                 sender=decision.sender or sender))
    if json_out:
        print_json({
            "tx_id": str(decision.tx_id), "sender": decision.sender, "choice": decision.choice,
            "outcome_before": decision.outcome_before, "outcome_after": decision.outcome_after,
            "who": decision.who, "note": decision.note, "decided": decision.decided.isoformat(),
            "receipts_written": receipts,
        })
        return
    out(f"resolved {decision.tx_id}: {decision.choice} by {decision.who} "
        f"({decision.outcome_before} -> {decision.outcome_after})")
    for path in receipts:
        out(f"receipt  {path}")


def _reasons(messages: list[str]) -> None:
    for line in messages[:SHOWN]:
        out(f"  {line}")
    if len(messages) > SHOWN:
        out(f"  ... and {len(messages) - SHOWN} more (bundle review)")


def _receipts(cfg, fingerprints) -> list[str]:
    if not cfg.receipts_out or not fingerprints:
        return []
    from django_adapter.receipts import write_receipts

    return [str(p) for p in write_receipts(fingerprints, config=cfg)]


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container): say so
        return "unknown"


#: (name, function, needs Django), mounted by django_adapter.cli.
COMMANDS = [
    ("review", review, True),
    ("retry", retry, True),
    ("resolve", resolve, True),
]

__all__ = ["COMMANDS"]
