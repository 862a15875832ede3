"""export_pending(): seal pending OutgoingTransactions, in capture order, into bundles.

Seal into a folder the site owns (an *outbox* on the laptop), then copy from
there to a stick: the chain state and the files in the outbox then always agree,
and a re-run never puts a second, different bundle with an already used seq on
a stick.

Crash between a file's rename and the DB commit: the file is in the outbox but
the database still says its transactions are pending and its seq unused.  The
next ``export_pending`` finds that file first (its seq is the next one, it is
signed by this identity, it follows the last digest, and its first/last
transaction ids and count match the next pending transactions) and *adopts* it
instead of sealing a new bundle with the same seq.  A file in the outbox that
does not match is refused with ``ChainError`` for a person to look at; it is
never overwritten or silently ignored.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable

from django.db import connections, transaction

from bundlekit import records as bk_records
from bundlekit.naming import is_bundle_name
from bundlekit.reader import verify
from bundlekit.writer import DEFAULT_MAX_BYTES, ChainLink, PackedRecord, seal
from django_adapter import attachments, schema
from django_adapter.codec import RECORD_FORMAT, load
from django_adapter.exceptions import ChainError
from django_adapter.models import (
    ExportChainState,
    ExportedBundle,
    OutgoingFile,
    OutgoingTransaction,
    SiteFile,
)
from django_adapter.signals import bundles_exported

CHUNK = 500


def export_pending(
    out_dir,
    *,
    identity,
    recipients,
    using="default",
    max_bytes=None,
    progress: Callable[[int], None] | None = None,
) -> list[ExportedBundle]:
    """Seal every not-yet-exported OutgoingTransaction of ``using`` into ``out_dir``.

    Transactions are marked ``exported`` (not consumed: only a receipt from the
    server says they arrived) and each file gets an ``ExportedBundle`` row, in
    the same DB transaction as the chain-state update.

    ``progress(n)`` is told how many records were just sealed (once per read
    chunk of ``CHUNK`` records, and once per adopted bundle); the counts add up to
    the records of the bundles returned.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    made: list[ExportedBundle] = []
    with transaction.atomic(using=using):
        state = _lock_chain(identity, using)
        made.extend(_adopt_orphans(out_dir, identity, state, using))
        if progress is not None:
            for adopted in made:
                progress(adopted.record_count)
        # The ids of the records handed to seal() and not yet in a sealed bundle,
        # 8 bytes each (a list of ints would take ~36 per transaction); a chunk of
        # a file (attachments.py) is there as minus its SiteFile id.
        ids = array("q")
        files = attachments.Outgoing(using)
        read_sql, links_sql = _queries(using)
        pending_rows = (OutgoingTransaction.objects.using(using).filter(exported=False)
                        .order_by("id").values_list("id", "tx", "format", "tx_id", "tx_name"))

        def pending():
            # Files a server's receipt said it needs again go first, whether or
            # not a pending transaction names them (their transactions are at the
            # server, failed, waiting for them).
            for site_file in files.resend():
                for chunk_record in files.chunks(site_file):
                    ids.append(-site_file.pk)
                    yield PackedRecord(bk_records.packb(chunk_record))
            last = 0
            with connections[using].cursor() as cursor:
                while True:
                    if read_sql is None:  # a backend other than the three we write SQL for
                        chunk = list(pending_rows.filter(id__gt=last)[:CHUNK])
                        linked = chunk and _links_between(chunk[0][0], chunk[-1][0], using)
                    else:
                        cursor.execute(read_sql, [False, last])
                        chunk = cursor.fetchall()
                        if chunk:
                            cursor.execute(links_sql, [chunk[0][0], chunk[-1][0]])
                            linked = cursor.fetchone() is not None
                    if not chunk:
                        return
                    needs = files.before([row[0] for row in chunk]) if linked else {}
                    yield from records(chunk, needs)
                    # seal() asks for the next record only once it has taken this one.
                    if progress is not None:
                        progress(len(chunk))
                    last = chunk[-1][0]

        def records(chunk, needs):
            append = ids.append
            for pk, tx, fmt, tx_id, tx_name in chunk:
                # The files this transaction needs and no bundle carried yet go first.
                if needs:
                    for site_file in needs.get(pk, ()):
                        for chunk_record in files.chunks(site_file):
                            append(-site_file.pk)
                            yield PackedRecord(bk_records.packb(chunk_record))
                append(pk)
                if fmt == RECORD_FORMAT:
                    # Already the bytes a bundle carries: no unpacking and repacking.
                    # The key stays as the database gave it (key_of below).
                    yield PackedRecord(bytes(tx), tx_id, tx_name)
                else:
                    yield load(tx, fmt)

        def on_sealed(sealed):
            count = sealed.manifest.record_count
            chunk = ids[:count]  # still an array: 8 bytes per id
            del ids[:count]
            carried = sorted({-i for i in chunk if i < 0}) if chunk and min(chunk) < 0 else []
            if carried:
                chunk = array("q", (i for i in chunk if i > 0))
            made.append(_record(sealed.path, sealed.manifest, sealed.digest, chunk, state, using,
                                records=count))
            attachments.mark_sent(carried, made[-1], using)

        seal(
            pending(),
            identity=identity,
            recipients=recipients,
            out_dir=out_dir,
            after=_link(state),
            max_bytes=max_bytes or DEFAULT_MAX_BYTES,
            on_sealed=on_sealed,
            # FORMAT.md §4.5: the migrations of the synced apps this site had applied.
            schema=schema.applied(using),
            # A manifest's first and last keys (and only those) become UUIDs.
            key_of=OutgoingTransaction._meta.get_field("tx_id").to_python,
        )
        if made:
            transaction.on_commit(
                lambda: bundles_exported.send(sender=ExportedBundle, bundles=made, using=using),
                using=using,
            )
    return made


def _lock_chain(identity, using: str) -> ExportChainState:
    state, _ = (
        ExportChainState.objects.using(using)
        .select_for_update()
        .get_or_create(fingerprint=identity.fingerprint, defaults={"site": identity.public.site})
    )
    return state


def _link(state: ExportChainState) -> ChainLink:
    return ChainLink(state.last_seq, bytes.fromhex(state.last_digest) if state.last_digest else None)


def _record(path, manifest, digest: bytes, ids, state, using: str, records=None) -> ExportedBundle:
    tracked = len(ids) if records is None else records
    if tracked != manifest.record_count:
        raise ChainError(f"{path}: sealed {manifest.record_count} records but tracked {tracked}")
    bundle = ExportedBundle.objects.using(using).create(
        fingerprint=state.fingerprint,
        seq=manifest.seq,
        digest=digest.hex(),
        bundle_id=str(manifest.bundle_id),
        file_name=os.path.basename(path),
        # Its transactions: the records a receipt's outcomes cover (chunk records of
        # files, FORMAT.md §5.5, are not transactions).
        record_count=len(ids),
        # A bundle holding only part of a large file has no transaction: 0, 0.
        first_outgoing_id=ids[0] if ids else 0,
        last_outgoing_id=ids[-1] if ids else 0,
        id_ranges=id_ranges(ids),
    )
    _mark_exported(bundle.id_ranges, bundle, using)
    state.last_seq = manifest.seq
    state.last_digest = digest.hex()
    state.save(using=using)
    return bundle


#: A run of at least this many consecutive ids is marked by one ranged UPDATE;
#: shorter runs go by ``id IN (...)`` lists of up to CHUNK ids.
RANGE_MIN = 32


def _mark_exported(runs, bundle, using: str) -> None:
    """Mark exactly the ids of ``runs`` (``id_ranges``) exported by ``bundle``: a run
    is every id from its first on, so ``first <= id < first + count`` names its
    rows and no other."""
    rows = OutgoingTransaction.objects.using(using)
    loose = array("q")
    for first, count in runs:
        if count >= RANGE_MIN:
            rows.filter(id__gte=first, id__lt=first + count).update(
                exported=True, exported_bundle=bundle)
        else:
            loose.extend(range(first, first + count))
    for i in range(0, len(loose), CHUNK):
        rows.filter(id__in=list(loose[i : i + CHUNK])).update(
            exported=True, exported_bundle=bundle)


#: The backends _queries writes SQL for (LIMIT, %s placeholders); any other reads
#: through the ORM, as before.
_SQL_VENDORS = frozenset({"sqlite", "postgresql", "mysql"})


def _links_between(lo: int, hi: int, using: str) -> bool:
    """What ``links_sql`` of _queries asks, through the ORM."""
    return OutgoingFile.objects.using(using).filter(
        outgoing_id__gte=lo, outgoing_id__lte=hi, file__last_bundle__isnull=True).exists()


def _queries(using: str) -> tuple[str | None, str | None]:
    """The two queries of each read chunk, as SQL written once (the ORM would build
    them again for every chunk and convert every row's values); (None, None) on a
    backend not in ``_SQL_VENDORS``.

    * the next ``CHUNK`` pending transactions after an id (params: False, the id):
      id, tx, format, tx_id, tx_name, as the driver gives them (tx_id too: only a
      manifest's first and last keys need it as a UUID, ``key_of``);
    * whether a transaction with an id from one to another (params) names a file
      no bundle carried yet: a superset of what ``Outgoing.before`` looks for in
      those ids, so a chunk without one needs no file and skips its two queries.
    """
    connection = connections[using]
    if connection.vendor not in _SQL_VENDORS:
        return None, None
    qn = connection.ops.quote_name
    ot = OutgoingTransaction._meta
    col = {f: qn(ot.get_field(f).column) for f in ("id", "tx", "format", "tx_id", "tx_name",
                                                      "exported")}
    read = (f"SELECT {col['id']}, {col['tx']}, {col['format']}, {col['tx_id']}, "
            f"{col['tx_name']} FROM {qn(ot.db_table)} "
            f"WHERE {col['exported']} = %s AND {col['id']} > %s "
            f"ORDER BY {col['id']} LIMIT {int(CHUNK)}")
    of, sf = OutgoingFile._meta, SiteFile._meta
    links = (f"SELECT 1 FROM {qn(of.db_table)} INNER JOIN {qn(sf.db_table)} "
             f"ON {qn(of.db_table)}.{qn(of.get_field('file').column)} = "
             f"{qn(sf.db_table)}.{qn(sf.pk.column)} "
             f"WHERE {qn(of.db_table)}.{qn(of.get_field('outgoing').column)} >= %s "
             f"AND {qn(of.db_table)}.{qn(of.get_field('outgoing').column)} <= %s "
             f"AND {qn(sf.db_table)}.{qn(sf.get_field('last_bundle').column)} IS NULL "
             "LIMIT 1")
    return read, links


def id_ranges(ids) -> list[list[int]]:
    """Ascending ids as [first id, count] runs of consecutive ids (usually one): how
    a receipt's positions find their rows (``ExportedBundle.id_ranges``)."""
    n = len(ids)
    if n and _one_run(ids):
        return [[ids[0], n]]
    runs: list[list[int]] = []
    for pk in ids:
        if runs and runs[-1][0] + runs[-1][1] == pk:
            runs[-1][1] += 1
        else:
            runs.append([pk, 1])
    return runs


#: Ids compared at a time by _one_run (two copies of this many ids at most).
_RUN_SLICE = 1 << 16


def _one_run(ids) -> bool:
    """Whether ``ids`` (not empty) are consecutive ascending ids: compared a slice at a
    time in C with the run they would be, not walked id by id."""
    first, n = ids[0], len(ids)
    if ids[-1] - first != n - 1:
        return False
    typecode = ids.typecode if type(ids) is array else None
    for i in range(0, n, _RUN_SLICE):
        part = ids[i : i + _RUN_SLICE]
        run = range(first + i, first + i + len(part))
        if part != (array(typecode, run) if typecode else list(run)):
            return False
    return True


def _adopt_orphans(out_dir: str, identity, state, using: str) -> list[ExportedBundle]:
    """Record bundles that were sealed but whose DB commit never happened."""
    ahead = []
    for name in os.listdir(out_dir):
        if not is_bundle_name(name):
            continue
        path = os.path.join(out_dir, name)
        try:
            vb = verify(path, trusted=[identity.public])
        except Exception:  # noqa: BLE001 - not ours or damaged: not an orphan of this chain
            continue
        if vb.manifest.seq > state.last_seq:
            ahead.append(vb)
    adopted = []
    for vb in sorted(ahead, key=lambda v: v.manifest.seq):
        m = vb.manifest
        if m.seq != state.last_seq + 1 or m.prev != _link(state).digest:
            raise ChainError(
                f"{vb.path}: seq {m.seq} in the outbox does not continue this site's chain "
                f"(last recorded seq {state.last_seq}); move it aside after checking it"
            )
        # Chunk records of files (FORMAT.md §5.5) have no kind: the transactions
        # are the records its kinds count.  Its files are sent again (the site
        # cannot read what it sealed for the server), which the server ignores.
        count = sum(m.kinds.values())
        rows = list(
            OutgoingTransaction.objects.using(using)
            .filter(exported=False)
            .order_by("id")
            .values_list("id", "tx_id")[:count]
        ) if count else []
        if (len(rows) != count or (rows and m.first_key is not None and rows[0][1] != m.first_key)
                or (rows and m.last_key is not None and rows[-1][1] != m.last_key)):
            raise ChainError(
                f"{vb.path}: seq {m.seq} in the outbox holds other transactions than the "
                "pending ones; move it aside after checking it"
            )
        adopted.append(_record(vb.path, m, vb.digest, [r[0] for r in rows], state, using,
                               records=m.record_count))
    return adopted
