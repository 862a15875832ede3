"""The ledger side of applying: records in, ledger rows out, statuses written once.

A transaction id is unique per sender (the fingerprint of the key that signed its
bundle; "" for rows copied without a bundle): one sender can never take, block or
overwrite another sender's transaction.  The same id from the same sender again
is a ``duplicate`` when its content digest matches and a ``conflict`` (kept in
``ConflictingTransaction``) when it does not; neither is stored twice.

The content digest serves only that comparison, so it is computed when an id
arrives a second time (:func:`digest_of`), not for every record: a first arrival
is stored with ``digest`` empty, and the digest of its stored record is taken
when, and if, a second copy needs comparing with it.

A record that is not a well-formed django_adapter record, or that claims a
producer other than the site that signed its bundle, is stored as ``failed`` with
a one-line reason (see :func:`check_record`): nothing in a signed bundle can make
the import stop with an internal error.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable

from django.apps import apps
from django.db import connections
from django.db.models.base import ModelState
from django.utils import timezone

from django_adapter.codec import RECORD_FORMAT, content_digest, load, object_key, packb
from django_adapter.models import ConflictingTransaction, IncomingTransaction, TxStatus
from django_adapter.outcomes import ApplyResult
from django_adapter.prep import preparer, uuid_text

from . import direct, pgcopy

#: Records looked up, deduplicated and handed on together (a window) ...
BATCH = 2000
#: ... or fewer, once they took this many bytes of packed records: a record may
#: hold up to ``bundlekit.limits.MAX_RECORD_VALUES`` values in few bytes, so a
#: window is closed by size too, and memory stays bounded whatever the records.
BATCH_BYTES = 2 * 1024 * 1024
#: Values per ``IN (...)`` list (SQLite's variable limit).
IN = 500

#: Ids given to records whose own id is missing or not a UUID, derived from their
#: bundle and position so importing the bundle again finds the same row.
_INVALID_ID_NS = uuid.UUID("6c1b7a4e-51d2-4b0e-9f0c-6e0d3c2b1a90")


def batch_size(connection, width: int, rows: list) -> int:
    """Rows per multi-row INSERT of ``width`` columns: Django's figure, except on
    SQLite, whose real variable limit (32766 since 3.32) is read from the
    connection rather than assumed to be the old 999."""
    if connection.vendor == "sqlite":
        try:
            import sqlite3

            connection.ensure_connection()
            limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            return max(1, min(500, limit // max(width, 1)))
        except Exception:  # noqa: BLE001 - an older Python or driver: Django's figure
            pass
    return max(connection.ops.bulk_batch_size([None] * width, rows), 1)


def chunks(items: list, size: int = IN):
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ------------------------------------------------------------------ records


def check_record(record, bundle=None) -> str:
    """Why ``record`` cannot be applied as it is, or "" when its shape is right.

    The shape rules of docs/ARCHITECTURE.md ("Records"), and the identity rule of
    docs/SECURITY.md: a record in a bundle names as producer the site that signed
    the bundle (or no site, as records captured without ``BUNDLEKIT_SITE`` do).
    """
    if type(record) is not dict:
        return f"a record must be a map, not {type(record).__name__}"
    if not isinstance(record.get("id"), uuid.UUID):
        return f"its id {_short(record.get('id'))} is not a UUID"
    if not isinstance(record.get("ts"), datetime.datetime) or record["ts"].tzinfo is None:
        return f"its timestamp {_short(record.get('ts'))} is not an aware date and time"
    if type(record.get("model")) is not str or "." not in record["model"]:
        return f"its model {_short(record.get('model'))} is not an app_label.model name"
    if record.get("action") not in ("I", "U", "D"):
        return f"its action {_short(record.get('action'))} is not I, U or D"
    if record["action"] != "D" and type(record.get("fields")) is not dict:
        return "its fields are not a map"
    if type(record.get("m2m") or {}) is not dict:
        return "its m2m are not a map"
    producer = record.get("producer", "")
    if type(producer) is not str:
        return f"its producer {_short(producer)} is not text"
    if bundle is not None:
        claimed = producer.split("/", 1)[0]
        if claimed and claimed != bundle.site:
            return (f"it claims producer {producer!r} but its bundle is signed by site "
                    f"{bundle.site!r}")
    nk = record.get("natural_key")
    if nk is not None and not isinstance(nk, list | tuple):
        return f"its natural key {_short(nk)} is not a list"
    if nk is None and _key_kind(record["model"]) == "nk":
        # Its pk means nothing here: without a natural key the object has no name.
        return f"it has no natural key, which {record['model']} objects are found by"
    return ""


def _text(value) -> str:
    return uuid_text(value) if type(value) is uuid.UUID else str(value)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def record_object_key(record: dict) -> str:
    """The stable name of the record's object (see ``codec.object_key``).

    A model whose primary key travels (a UUID) is named by that key alone, so a
    record cannot dodge the stale rule by naming its object under another (or no)
    natural key; other models are named by their natural key.
    """
    label = record["model"]
    model = _pk_model(label)
    if model is not None:
        try:
            pk = model._meta.pk.to_python(record.get("pk"))
        except Exception:  # noqa: BLE001 - an unusable pk is judged when applied
            pk = record.get("pk")
        return object_key(label, _text(pk), None)
    return object_key(label, record.get("pk"), record.get("natural_key"))


_KINDS: dict = {}


def _key_kind(label: str):
    """(how objects of ``label`` are named: "pk", "nk" or None if unknown, the model)."""
    if label not in _KINDS:
        from django_adapter.serialization import pk_travels

        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            _KINDS[label] = (None, None)
        else:
            _KINDS[label] = ("pk" if pk_travels(model) else "nk", model)
    return _KINDS[label][0]


def _pk_model(label: str):
    """The model of ``label`` if its primary key travels, else None."""
    return _KINDS[label][1] if _key_kind(label) == "pk" else None


def bounded(ts, bundle):
    """A change's timestamp as the stale rule sees it: never later than its bundle's
    arrival here, since it cannot have happened after that (a clock that runs
    ahead would otherwise win every edit for as long as it is ahead)."""
    received = getattr(bundle, "received", None) if bundle is not None else None
    return received if received is not None and ts > received else ts


def ledger_row(record, bundle, position: int, *, sender: str = "", digest: str = "",
               raw: bytes | None = None) -> IncomingTransaction:
    """The ledger row of one record, unsaved; ``_bk_record`` keeps the record.
    ``raw``: its packed bytes as they arrived (else it is packed here)."""
    reason = check_record(record, bundle)
    if reason:
        return _failed_row(record, digest, bundle, position, sender, reason)
    model = record["model"]
    values = {
        "tx_id": record["id"],
        "sender": sender,
        "tx_name": model[:255],
        "tx_pk": _text(record.get("pk"))[:255],
        "producer": record.get("producer", "")[:255],
        "action": record["action"],
        "timestamp": bounded(record["ts"], bundle),
        "tx": raw if raw is not None else packb(record),
        "format": RECORD_FORMAT,
        "digest": digest,
        "object_key": record_object_key(record),
        "bundle_id": bundle.pk if bundle is not None else None,
        "position": position,
    }
    return _row(values, bundle, record)


def _failed_row(record, digest, bundle, position, sender, reason) -> IncomingTransaction:
    rec = record if type(record) is dict else {}
    tx_id = rec.get("id")
    if not isinstance(tx_id, uuid.UUID):
        where = f"{bundle.bundle_id if bundle is not None else ''}/{position}"
        tx_id = uuid.uuid5(_INVALID_ID_NS, where)
    try:
        body = packb(record)
    except Exception:  # noqa: BLE001 - it came out of msgpack, but be safe
        body = b""
    values = {
        "tx_id": tx_id,
        "sender": sender,
        "tx_name": str(rec.get("model", ""))[:255],
        "tx_pk": str(rec.get("pk"))[:255],
        "producer": str(rec.get("producer", ""))[:255],
        "action": rec.get("action") if rec.get("action") in ("I", "U", "D") else "U",
        "timestamp": timezone.now(),
        "tx": body,
        "format": RECORD_FORMAT,
        "digest": digest,
        "object_key": object_key("?", str(tx_id), None),
        "bundle_id": bundle.pk if bundle is not None else None,
        "position": position,
        "status": TxStatus.FAILED,
        "reason": f"not applied: {reason}",
    }
    row = _row(values, bundle, None)
    row._bk_invalid = True
    return row


_DEFAULTS: dict | None = None
_REPEATED = ("received", "consumed_datetime")
#: The types a ledger row's values that need no conversion are built with (text,
#: ints, bytes, booleans): only ids and datetimes go through their fields.
_AS_IS = frozenset((str, int, bytes, bool))


def _row(values: dict, bundle, record) -> IncomingTransaction:
    # The instance is filled as the database would fill it (``from_db`` does the
    # same): Model.__init__ costs more than the rest of a ledger row together,
    # which matters at one row per record.  Defaults are plain values here.
    global _DEFAULTS
    if _DEFAULTS is None:
        _DEFAULTS = {f.attname: f.get_default() for f in IncomingTransaction._meta.concrete_fields}
    row = IncomingTransaction.__new__(IncomingTransaction)
    row.__dict__.update(_DEFAULTS)
    row.__dict__.update(values)
    row._state = ModelState()
    if bundle is not None:
        IncomingTransaction._meta.get_field("bundle").set_cached_value(row, bundle)
    row._bk_record = record
    row._bk_checked = record is not None
    return row


def safe_digest(record) -> str:
    try:
        return content_digest(record)
    except Exception:  # noqa: BLE001 - keys of mixed types cannot be sorted
        import hashlib

        return hashlib.sha256(packb({"raw": record})).hexdigest()


def digest_of(row) -> str:
    """The content digest of a ledger row's record, computed (and kept on the
    row) the first time it is asked for: rows are stored without it."""
    if not row.digest:
        record = getattr(row, "_bk_record", None)
        if record is None:
            try:
                record = load(row.tx, row.format)
            except Exception:  # noqa: BLE001 - undecodable bytes: digest of the bytes
                import hashlib

                row.digest = hashlib.sha256(bytes(row.tx)).hexdigest()
                return row.digest
        row.digest = safe_digest(record)
    return row.digest


def store_records(records: Iterable[dict], using: str, *, bundle=None, result: ApplyResult,
                  sender: str | None = None) -> list:
    """Put records into the ledger as ``pending`` rows; returns the new rows in order."""
    return [row for rows in store_chunks(records, using, bundle=bundle, result=result, sender=sender)
            for row in rows]


def store_chunks(records: Iterable, using: str, *, bundle=None, result: ApplyResult,
                 sender: str | None = None, insert: bool = True, packed: bool = False):
    """:func:`store_records`, yielding the new rows of each batch, so a caller can
    apply a bundle while it streams in (memory stays flat).

    ``sender`` defaults to the fingerprint of ``bundle`` ("" without one).  With
    ``insert=False`` the rows are yielded unsaved and the caller writes them (the
    apply engine does, with their final status); it must do so before asking for
    the next batch, which is deduplicated against the ledger.  With ``packed``,
    ``records`` yields pairs of a record and its packed bytes, which the rows keep.
    """
    if sender is None:
        sender = bundle.fingerprint if bundle is not None else ""
    batch: list = []
    # An OpenedBundle says how many bytes it has decoded (docs/SECURITY.md, "Memory bombs").
    size = getattr(records, "bytes_read", None) is not None
    start = 0

    def flush():
        rows = _new_rows(batch, using, bundle, sender, result, packed)
        if insert:
            write_new(rows, using)
        batch.clear()
        return rows

    for position, record in enumerate(records):
        batch.append((position, record))
        if len(batch) >= BATCH or (size and records.bytes_read - start >= BATCH_BYTES):
            yield flush()
            if size:
                start = records.bytes_read
    if batch:
        yield flush()


def _new_rows(batch: list, using: str, bundle, sender: str, result: ApplyResult,
              packed: bool = False) -> list:
    if packed:
        built = [ledger_row(record, bundle, position, sender=sender, raw=raw)
                 for position, (record, raw) in batch]
    else:
        built = [ledger_row(record, bundle, position, sender=sender) for position, record in batch]
    known: dict = {}  # tx_id -> the rows this id already has (stored, or earlier in the batch)
    ids = list({row.tx_id for row in built})
    for chunk in chunks(ids):
        # Rows stored by earlier batches are in the database already (same
        # transaction): only this batch needs remembering here.
        for stored in _stored_by_id(chunk, sender, using):
            known.setdefault(stored.tx_id, []).append(stored)
    rows = []
    for row in built:
        earlier = known.get(row.tx_id)
        if earlier is None:
            rows.append(row)
            known[row.tx_id] = [row]
            continue
        digests = {digest_of(r) for r in earlier}
        if digest_of(row) in digests:
            result.count(TxStatus.DUPLICATE)
        else:
            result.count(TxStatus.CONFLICT)
            result.messages.append(
                f"conflict: transaction {row.tx_id} ({row.tx_name}) arrived again "
                "with different content; kept aside, not applied"
            )
            ConflictingTransaction.objects.using(using).create(
                tx_id=row.tx_id, sender=sender, tx_name=row.tx_name, digest=row.digest,
                existing_digest=min(digests), tx=row.tx, format=RECORD_FORMAT, bundle=bundle,
                position=row.position,
            )
    return rows


def _stored_by_id(ids: list, sender: str, using: str):
    """The ledger rows with these ids, of ``sender`` or of no sender when given: a
    bundle's ids are its signer's own, and also meet the rows this server copied
    itself without a bundle (edc-sync's route, sender ""); a direct copy (no
    sender) meets every sender's rows.

    Written as SQL rather than through the ORM: the query runs for every window
    of every import and almost always finds nothing, and the ORM's lookup
    machinery (each of 500 ids through the field's conversion, the compiler)
    cost more than the query itself, a fortieth of a SQLite import.

    On PostgreSQL each id is looked up on its own.  A ledger that grows inside
    the import's transaction has no statistics, and PostgreSQL then plans
    ``sender IN (..) AND tx_id IN (..)`` as a scan of every row of the sender
    (it cannot know that one sender is the whole table): 24 ms a query at
    40,000 rows, and growing with them.  Looking each id up on its own (the
    ``OFFSET 0`` keeps the planner from turning it back into that scan) costs
    the same at any size."""
    connection = connections[using]
    table = connection.ops.quote_name(IncomingTransaction._meta.db_table)
    if connection.vendor == "postgresql":
        where = "i.tx_id = k.id" + (" AND i.sender IN (%s, %s)" if sender else "")
        sql = (f"SELECT t.id, t.tx_id, t.digest, t.tx, t.format FROM unnest(%s::uuid[]) AS k(id) "
               f"CROSS JOIN LATERAL (SELECT i.id, i.tx_id, i.digest, i.tx, i.format FROM {table} i "
               f"WHERE {where} OFFSET 0) t")
        params = [list(ids)] + ([sender, ""] if sender else [])
    else:
        prep = preparer(IncomingTransaction._meta.get_field("tx_id"), connection)
        marks = ", ".join(["%s"] * len(ids))
        sql = (f"SELECT id, tx_id, digest, tx, format FROM {table} WHERE tx_id IN ({marks})"
               + (" AND sender IN (%s, %s)" if sender else ""))
        params = [prep(i) for i in ids] + ([sender, ""] if sender else [])
    return IncomingTransaction.objects.using(using).raw(sql, params)


# ------------------------------------------------------------------ writing


def decide(row, status: str, reason: str, now) -> None:
    """Set a row's final status (written by :func:`write`)."""
    row.status = status
    row.reason = reason
    done = status not in (TxStatus.FAILED, TxStatus.PENDING)
    row.is_consumed = done
    row.consumed_datetime = now if done else None


def write(rows: list, using: str) -> None:
    """Write rows as they are: new ones inserted (each once, with its status),
    stored ones updated, one statement per status."""
    new = [r for r in rows if r.pk is None]
    old = [r for r in rows if r.pk is not None]
    write_new(new, using)
    groups: dict = {}
    for r in old:
        groups.setdefault((r.status, r.reason, r.consumed_datetime), []).append(r.pk)
    for (status, reason, when), pks in groups.items():
        for chunk in chunks(pks):
            IncomingTransaction.objects.using(using).filter(pk__in=chunk).update(
                status=status, reason=reason, is_consumed=when is not None, consumed_datetime=when)


def write_new(rows: list, using: str, *, use_copy: bool = True) -> None:
    """``bulk_create(rows)`` without its per-value machinery, on backends that return
    the new ids: the values are the ones :func:`ledger_row` built (text, ints,
    bytes), and only ids and datetimes go through their fields' conversion.  On
    PostgreSQL with psycopg 3 the rows go in by COPY (``pgcopy``), which costs a
    tenth of an INSERT there; ``use_copy=False`` keeps the INSERT (for comparing)."""
    if not rows:
        return
    connection = connections[using]
    if not connection.features.can_return_rows_from_bulk_insert:
        IncomingTransaction.objects.using(using).bulk_create(rows)
        got = {}
        for chunk in chunks(list({r.tx_id for r in rows})):
            got.update(((s, t), pk) for s, t, pk in IncomingTransaction.objects.using(using)
                       .filter(tx_id__in=chunk).values_list("sender", "tx_id", "pk"))
        for r in rows:
            r.pk = r.id = got[(r.sender, r.tx_id)]
            r._state.adding = False
            r._state.db = using
        return
    opts = IncomingTransaction._meta
    fields = [f for f in opts.local_concrete_fields if not f.primary_key]
    attnames = [f.attname for f in fields]
    columns = [f.column for f in fields]
    convert = [preparer(f, connection) for f in fields]
    qn = connection.ops.quote_name
    head = f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(f.column) for f in fields)}) VALUES "
    one = "(" + ", ".join([direct.placeholder(connection)] * len(fields)) + ")"
    tail = f" RETURNING {qn(opts.pk.column)}"
    now = timezone.now()
    memo: dict = {}  # received and consumed_datetime: one value for the whole window
    unnest = connection.vendor == "postgresql"
    if unnest:
        # One array per column (as Django's own bulk insert does on PostgreSQL): a
        # short statement, planned and parsed quickly whatever the number of rows.
        types = [f.db_type(connection).split("(")[0] for f in fields]
        sql = (head.replace(" VALUES ", " SELECT * FROM UNNEST(")
               + ", ".join(f"%s::{t}[]" for t in types) + ")" + tail)
    size = len(rows) if unnest else batch_size(connection, len(fields), rows)
    copy = use_copy and pgcopy.available(connection)
    with connection.cursor() as cursor:
        for batch in chunks(rows, size):
            params = []
            for row in batch:
                row.received = now  # auto_now_add, as bulk_create sets it
                values = row.__dict__
                for attname, conv in zip(attnames, convert, strict=True):
                    value = values[attname]
                    if value is not None and type(value) not in _AS_IS:
                        if attname in _REPEATED:
                            key = (attname, value)
                            prepared = memo.get(key)
                            if prepared is None:
                                prepared = memo[key] = conv(value)
                            value = prepared
                        else:
                            value = conv(value)
                    params.append(value)
            width = len(fields)
            if copy:
                pks = pgcopy.next_ids(connection, opts.db_table, opts.pk.column, len(batch))
                pgcopy.copy_rows(connection, opts.db_table, [opts.pk.column] + columns,
                                 ([pk, *params[i * width:(i + 1) * width]]
                                  for i, pk in enumerate(pks)))
                got = [(pk,) for pk in pks]
            elif unnest:
                cursor.execute(sql, [params[i::width] for i in range(width)])
                got = cursor.fetchall()
            else:
                direct.execute(connection, cursor, head + ", ".join([one] * len(batch)) + tail,
                               params)
                got = cursor.fetchall()
            for row, (pk,) in zip(batch, got, strict=True):
                row.pk = pk
                row._state.adding = False
                row._state.db = using
