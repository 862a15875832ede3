"""Attachments: the files behind FileField and ImageField travel inside the bundles.

Site (capture): when a synced object is saved with a file in a file field, the
record carries, under ``files``, the file's SHA-256, size, content type and
name, and the file's bytes are **copied aside at capture** into a
content-addressed folder (``BUNDLEKIT["ATTACHMENTS"]/outgoing/<sha256>``).
Why copy rather than read the field's storage at export time: a research
assistant may replace the file later, a storage may overwrite a name in place,
and an app may delete replaced files; what the server must get is the content
that was saved with *that* transaction, and a copy named by its digest is the
only way to still have it when the bundle is sealed days later.  The copy is
read once and hashed as it is written; a file whose name did not change since
the object was loaded (and whose size still matches what was captured under
that name) is not read again.  A file field whose file is missing from its
storage travels as its name only, as before (the site's own row points at
nothing, so there is nothing to send).

Export: the chunk records of a file (bundlekit.blobs, FORMAT.md §5.5) go right
before the first transaction that needs it and that is not yet sent; a file is
sent once (later transactions refer to it by digest).

Server: chunk records are put together in ``ATTACHMENTS/incoming`` as the
bundle streams in (a file whose digest does not check makes the whole bundle
refused: nothing is stored).  Applying a record with ``files`` writes each file
through the field's storage (Django's storage API), reads it back to check its
digest, and only then points the row at the stored name; a file that has not
arrived, or is damaged, fails the record with a reason, and ``bundle retry``
applies it once the file is here.  A file already stored for the same storage
(same digest) is not stored again: rows share it.

Receipts (RECEIPTS.md §3.7): each import notes the files a bundle carried or
named (``SenderFile``); the sender's receipts list those the server holds,
checked against their digest, and those its failed transactions need (never
arrived, or the stored copy found damaged when a row reused it).  The site
records both per server key (``SiteFileServer``): an export leaves out the bytes
of a file the server holds and sends again, first, one it needs; the bundle that
completes a needed file at the server retries what waited for it
(``django_adapter.intake``), and a damaged stored copy is repaired under its own
name.

Prune: the local copy is deleted only when a receipt from a receipt issuer said
the server holds that digest (and no later one said it needs it).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.utils import validate_file_name
from django.db import models as dj_models
from django.db import transaction

from bundlekit import blobs
from bundlekit.errors import AttachmentError, CorruptBundle

#: BUNDLEKIT["MAX_FILE_BYTES"] default: the largest file captured or accepted.
DEFAULT_MAX_FILE_BYTES = 4 << 30


# ------------------------------------------------------------------ settings


def _setting(name: str, default):
    return (getattr(settings, "BUNDLEKIT", None) or {}).get(name, default)


def root() -> Path:
    """``BUNDLEKIT["ATTACHMENTS"]``, relative paths against ``BASE_DIR``."""
    path = Path(_setting("ATTACHMENTS", "var/attachments"))
    if not path.is_absolute():
        path = Path(getattr(settings, "BASE_DIR", None) or ".") / path
    return path


def max_file_bytes() -> int:
    return int(_setting("MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES))


def max_bundle_file_bytes() -> int | None:
    value = _setting("MAX_FILE_BYTES_PER_BUNDLE", None)
    return None if value is None else int(value)


_FILE_FIELDS: dict = {}


def file_fields(model) -> list:
    """The synced file fields of ``model`` (cached: capture asks on every save)."""
    found = _FILE_FIELDS.get(model)
    if found is None:
        from django_adapter.serialization import synced_fields

        found = _FILE_FIELDS[model] = [f for f in synced_fields(model)
                                       if isinstance(f, dj_models.FileField)]
    return found


# ------------------------------------------------------------------ capture (site)


def capture(instance, action: str) -> tuple[dict, list]:
    """(``files`` for the record, the SiteFile rows to link) for one change."""
    if action == "D":
        return {}, []
    fields = file_fields(type(instance)._meta.concrete_model)
    if not fields:
        return {}, []
    files, rows = {}, []
    loaded = _loaded_names(instance)
    for f in fields:
        value = getattr(instance, f.attname)
        name = getattr(value, "name", None) or ""
        if not name:
            continue
        row = _known(f, name) if loaded.get(f.attname) == name else None
        if row is None:
            row = _copy_aside(f, name, using=instance._state.db or "default")
        if row is None:
            continue  # the file is not in its storage: the name travels alone
        files[f.name] = {"sha256": bytes.fromhex(row.sha256), "size": row.size,
                         "content_type": row.content_type, "name": name}
        rows.append(row)
    return files, rows


def _loaded_names(instance) -> dict:
    loaded = instance.__dict__.get("_bk_loaded")
    if not loaded:
        return {}
    names, values = loaded
    return {n: getattr(v, "name", v) for n, v in zip(names, values, strict=True)}


def _known(field, name: str):
    """The file captured last under ``name``, if its storage still has that size."""
    from django_adapter.models import SiteFile

    row = SiteFile.objects.filter(name=name).order_by("-id").first()
    if row is None:
        return None
    try:
        return row if field.storage.size(name) == row.size else None
    except (OSError, NotImplementedError):
        return None


def _copy_aside(field, name: str, using: str):
    from django_adapter.models import SiteFile

    storage = field.storage
    try:
        src = storage.open(name, "rb")
    except (FileNotFoundError, OSError):
        return None
    limit = max_file_bytes()
    folder = root() / "outgoing"
    folder.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".capture-", suffix=".partial")
    try:
        with src, os.fdopen(fd, "wb") as out:
            while data := src.read(blobs.BLOB_CHUNK_SIZE):
                size += len(data)
                if size > limit:
                    raise AttachmentError(
                        f"{field.model._meta.label}.{field.name}: the file {name} is larger than "
                        f"the {limit:,} bytes BUNDLEKIT['MAX_FILE_BYTES'] allows; it cannot be synced")
                h.update(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            os.unlink(tmp)
            return None  # an empty file has no content to send; its name travels
        hexd = h.hexdigest()
        final = folder / hexd
        if final.exists():
            os.unlink(tmp)
        else:
            os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    row, created = SiteFile.objects.using(using).get_or_create(
        sha256=hexd, defaults={"size": size, "content_type": content_type, "name": name[:255],
                               "copy": str(final)})
    if not created and not row.copy:
        row.copy = str(final)  # pruned before, captured again: keep it until confirmed again
        row.save(using=using, update_fields=["copy"])
    return row


def link(outgoing, rows: list, using: str) -> None:
    from django_adapter.models import OutgoingFile

    OutgoingFile.objects.using(using).bulk_create(
        [OutgoingFile(outgoing=outgoing, file=r) for r in {r.pk: r for r in rows}.values()])


# ------------------------------------------------------------------- export (site)


class Outgoing:
    """Chunk records to put before the pending transactions that need them.

    Used by the exporter: :meth:`resend` gives the files a server's receipt said
    it needs sent again (missing or damaged there), to go first; :meth:`before`
    gives, for one chunk of pending transaction ids, the files to send before
    each; :meth:`chunks` reads one from its copy.  A file is sent once per export
    run; never again once a bundle carried its last chunk (``SiteFile.last_bundle``)
    unless a receipt asks for it; and not at all when a receipt said the server
    holds it (the record still names it by digest, size and name, and the server
    checks that it has it)."""

    def __init__(self, using: str):
        self.using = using
        self.sending: set[int] = set()

    def resend(self) -> list:
        from django_adapter.models import SiteFile, SiteFileServer

        rows = []
        wanted = (SiteFileServer.objects.using(self.using).filter(state=SiteFileServer.NEEDED)
                  .values_list("file_id", flat=True).distinct())
        for row in SiteFile.objects.using(self.using).filter(pk__in=list(wanted)).order_by("id"):
            if row.pk in self.sending:
                continue
            if not (row.copy and os.path.isfile(row.copy)) and not _recopy(row, self.using):
                continue  # gone here too: export_to names it (still_needed)
            self.sending.add(row.pk)
            rows.append(row)
        return rows

    def before(self, ids: list[int]) -> dict[int, list]:
        from django_adapter.models import OutgoingFile, SiteFileServer

        out: dict[int, list] = {}
        links = list(OutgoingFile.objects.using(self.using)
                     .filter(outgoing_id__in=ids, file__last_bundle__isnull=True)
                     .select_related("file").order_by("outgoing_id", "file_id"))
        held_there = set(SiteFileServer.objects.using(self.using).filter(
            file_id__in={ln.file_id for ln in links}, state=SiteFileServer.HELD)
            .values_list("file_id", flat=True))
        for ln in links:
            if ln.file_id in self.sending or ln.file_id in held_there or not ln.file.copy:
                continue
            self.sending.add(ln.file_id)
            out.setdefault(ln.outgoing_id, []).append(ln.file)
        return out

    @staticmethod
    def chunks(row):
        """The chunk records of one SiteFile, read from its copy."""
        try:
            f = open(row.copy, "rb")
        except OSError as e:
            raise AttachmentError(f"the copy of the file {row.name} ({row.sha256}) cannot be read: "
                                  f"{e.strerror or e}; it was captured to {row.copy}") from e
        with f:
            yield from blobs.chunks(f, bytes.fromhex(row.sha256), row.size, name=row.copy)


def mark_sent(file_ids: list[int], bundle, using: str) -> None:
    """Chunks of these files are in ``bundle`` (the last one so far carries their end);
    a server that needed one is not sent it again unless a newer receipt asks."""
    from django_adapter.models import SiteFile, SiteFileServer

    if not file_ids:
        return
    qs = SiteFile.objects.using(using).filter(pk__in=file_ids)
    qs.filter(first_bundle__isnull=True).update(first_bundle=bundle)
    qs.update(last_bundle=bundle)
    SiteFileServer.objects.using(using).filter(
        file_id__in=file_ids, state=SiteFileServer.NEEDED).update(state=SiteFileServer.RESENT)


def still_needed(using: str) -> list[dict]:
    """The files a server needs that no export could send (after one ran): neither
    a copy aside nor the same content in its storage is left here."""
    from django_adapter.models import SiteFile, SiteFileServer

    return [{"name": r.name, "sha256": r.sha256} for r in SiteFile.objects.using(using)
            .filter(servers__state=SiteFileServer.NEEDED).distinct().order_by("id")]


def _storages() -> list:
    """The storages of the synced file fields, each once."""
    from django.apps import apps

    from django_adapter.serialization import is_synced

    found = {}
    for model in apps.get_models():
        if is_synced(model):
            for f in file_fields(model._meta.concrete_model):
                found.setdefault(storage_key(f.storage), f.storage)
    return list(found.values())


def _recopy(row, using: str) -> bool:
    """Copy a file aside again from its field's storage, if it is still there with
    the content it was captured with (a server needs a file whose copy was pruned)."""
    folder = root() / "outgoing"
    folder.mkdir(parents=True, exist_ok=True)
    for storage in _storages():
        try:
            src = storage.open(row.name, "rb")
        except Exception:  # noqa: BLE001 - not in this storage
            continue
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".recopy-", suffix=".partial")
        h = hashlib.sha256()
        with src, os.fdopen(fd, "wb") as out:
            while data := src.read(blobs.BLOB_CHUNK_SIZE):
                h.update(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != row.sha256:
            os.unlink(tmp)
            continue
        final = folder / row.sha256
        os.replace(tmp, final)
        row.copy = str(final)
        row.save(using=using, update_fields=["copy"])
        return True
    return False


def note_server_files(server: str, held_digests, needed_digests, as_of, using: str) -> tuple[int, int]:
    """Record what a verified receipt of ``server`` (its key fingerprint) says of
    this site's captured files (RECEIPTS.md §3.7); returns how many of them it
    says the server holds and needs sent again.  What a receipt older than the
    server's last word says is not taken, nor counted (receipts are read in any
    order)."""
    from django_adapter.models import SiteFile, SiteFileServer

    counts = {SiteFileServer.HELD: 0, SiteFileServer.NEEDED: 0}
    for state, digests in ((SiteFileServer.HELD, held_digests),
                           (SiteFileServer.NEEDED, needed_digests)):
        hexes = [d.hex() for d in digests]
        for i in range(0, len(hexes), 1000):
            ids = list(SiteFile.objects.using(using).filter(sha256__in=hexes[i:i + 1000])
                       .values_list("id", flat=True))
            known = {r.file_id: r for r in SiteFileServer.objects.using(using)
                     .filter(server=server, file_id__in=ids)}
            SiteFileServer.objects.using(using).bulk_create(
                [SiteFileServer(file_id=f, server=server, state=state, as_of=as_of)
                 for f in ids if f not in known])
            counts[state] += len(ids) - len(known)
            for r in known.values():
                if r.as_of < as_of:
                    counts[state] += 1
                    r.state, r.as_of = state, as_of
                    r.save(using=using, update_fields=["state", "as_of"])
    return counts[SiteFileServer.HELD], counts[SiteFileServer.NEEDED]


# -------------------------------------------------------------------- prune (site)


def prune_copies(using: str) -> list[str]:
    """Delete the copies aside of the files a server's receipt said it holds
    (RECEIPTS.md §3.7), unless a server still needs one sent again, or was sent one
    again and has not confirmed it yet.  A server whose receipts list no files (an
    older release) confirms none: the copies stay."""
    from django_adapter.models import SiteFile, SiteFileServer

    removed = []
    confirmed = (SiteFile.objects.using(using).exclude(copy="")
                 .filter(servers__state=SiteFileServer.HELD)
                 .exclude(servers__state__in=[SiteFileServer.NEEDED, SiteFileServer.RESENT])
                 .distinct())
    for row in confirmed:
        try:
            os.unlink(row.copy)
        except FileNotFoundError:
            pass
        removed.append(row.copy)
        row.copy = ""
        row.save(using=using, update_fields=["copy"])
    return removed


# ------------------------------------------------------------------ import (server)


def incoming_store(sender: str) -> blobs.BlobStore:
    base = root() / "incoming"
    safe = "".join(c for c in sender if c.isalnum() or c == "-")[:64] or "sender"
    return blobs.BlobStore(base, parts=base / "parts" / safe, max_size=max_file_bytes())


def divert(records, sender: str, *, path=None, on_chunk=None, packed: bool = False,
           bundle=None, using=None):
    """The records that are not chunk records; the chunks go into the incoming
    store as they stream by (CorruptBundle for a bad one, or beyond the per-bundle
    limit).  With ``packed``, ``records`` is an opened bundle read as pairs of a
    record and its bytes (``OpenedBundle.packed``), and pairs come out.

    What is returned still tells how far the file has been read
    (``bytes_read``, as an opened bundle does): the apply engine closes its
    windows by bytes as well as by count, which is what keeps a hostile but
    signed bundle of large records from adding up in memory.  It also tells
    ``arrived``: the digests of the files this bundle completed.

    With ``bundle`` and ``using`` every file the bundle carries or its records
    refer to is noted for its sender (``SenderFile``, in the import's transaction):
    what the sender's receipts then say is held or needed (RECEIPTS.md §3.7)."""
    diverted = _Diverted(records)
    noted = _Noted(sender, bundle, using) if using is not None else None
    diverted.rest = _divert(records, sender, path=path, on_chunk=on_chunk, packed=packed,
                            arrived=diverted.arrived, noted=noted)
    return diverted


class _Diverted:
    def __init__(self, records):
        self._records, self.rest, self.arrived = records, iter(()), set()

    def __iter__(self):
        return self.rest

    @property
    def bytes_read(self):
        return getattr(self._records, "bytes_read", None)


class _Noted:
    """Digests a bundle names, written a batch at a time (a bundle may name
    10,000 files: memory stays a batch)."""

    BATCH = 1000

    def __init__(self, sender: str, bundle, using: str):
        self.sender, self.bundle, self.using = sender, bundle, using
        self.batch: set[str] = set()

    def add(self, hexd: str) -> None:
        self.batch.add(hexd)
        if len(self.batch) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        from django_adapter.models import SenderFile

        if self.batch:
            SenderFile.objects.using(self.using).bulk_create(
                [SenderFile(fingerprint=self.sender, sha256=h, bundle=self.bundle)
                 for h in sorted(self.batch)], ignore_conflicts=True)
            self.batch = set()


def record_digests(record: dict) -> list[str]:
    """The SHA-256 hex digests a record's ``files`` name (well-formed ones only:
    a malformed description fails the record when it is applied)."""
    files = record.get("files")
    if type(files) is not dict:
        return []
    found = []
    for meta in files.values():
        digest = meta.get("sha256") if type(meta) is dict else None
        if type(digest) is bytes and len(digest) == 32:
            found.append(digest.hex())
    return found


def _divert(records, sender: str, *, path=None, on_chunk=None, packed=False, arrived=None,
            noted=None):
    store = None
    limit = max_bundle_file_bytes()
    total = 0
    for item in records.packed() if packed else records:
        record = item[0] if packed else item
        if blobs.BLOB_KEY not in record:
            if noted is not None:
                for hexd in record_digests(record):
                    noted.add(hexd)
            yield item
            continue
        try:
            chunk = blobs.check_chunk(record)
            total += len(chunk.data)
            if limit is not None and total > limit:
                raise CorruptBundle(f"it carries more than the {limit:,} bytes of files "
                                    "BUNDLEKIT['MAX_FILE_BYTES_PER_BUNDLE'] allows")
            if store is None:
                store = incoming_store(sender)
            if store.add(chunk) and arrived is not None:
                arrived.add(chunk.digest.hex())
        except CorruptBundle as e:
            if path is not None:
                e.with_path(path)
            raise
        if noted is not None and chunk.offset == 0:
            noted.add(chunk.digest.hex())
        if on_chunk is not None:
            on_chunk()
    if noted is not None:
        noted.flush()


# ------------------------------------------------------------------- apply (server)


def storage_key(storage) -> str:
    cls = type(storage)
    where = getattr(storage, "location", None) or getattr(storage, "bucket_name", None) or ""
    return f"{cls.__module__}.{cls.__qualname__}:{where}"[:255]


def place(model, record: dict, using: str) -> dict:
    """Store every file of ``record`` through its field's storage and point the
    record's field at the stored name; returns {attname: stored name}.
    AttachmentError (the row fails, retryable) when a file is not here or does not
    check.  Call it once everything else about the row is resolved: a savepoint
    rolled back after it leaves the stored file unreferenced."""
    files = record.get("files")
    if not files:
        return {}
    if type(files) is not dict:
        raise AttachmentError("the record's files are not a map")
    placed = {}
    for fname, meta in files.items():
        try:
            field = model._meta.get_field(fname)
        except Exception:  # noqa: BLE001 - FieldDoesNotExist and friends
            raise AttachmentError(f"{model._meta.label} has no field {fname!r} for a file") from None
        if not isinstance(field, dj_models.FileField):
            raise AttachmentError(f"{model._meta.label}.{fname} is not a file field")
        record["fields"][fname] = placed[field.attname] = _stored_name(field, meta, using)
    return placed


def _check_meta(field, meta) -> tuple[str, int, str]:
    if type(meta) is not dict:
        raise AttachmentError(f"{field.name}: the file's description is not a map")
    digest, size, name = meta.get("sha256"), meta.get("size"), meta.get("name")
    if type(digest) is not bytes or len(digest) != 32 or type(size) is not int or size <= 0 \
            or type(name) is not str or not name:
        raise AttachmentError(f"{field.name}: the file's description is malformed")
    try:
        validate_file_name(name, allow_relative_path=True)
    except Exception:  # noqa: BLE001 - SuspiciousFileOperation
        raise AttachmentError(f"{field.name}: the file name {name!r} is not acceptable") from None
    return digest.hex(), size, name


def _stored_name(field, meta, using: str) -> str:
    from django_adapter.models import ServerFile

    hexd, size, name = _check_meta(field, meta)
    storage = field.storage
    key = storage_key(storage)
    # Locked: the orphan sweep (files_report) deletes a ServerFile only under the
    # same lock, after checking again that no row points at it.
    known = (ServerFile.objects.using(using).select_for_update()
             .filter(sha256=hexd, storage=key).first())
    if known is not None and not damaged(hexd, key):
        if not storage.exists(known.name):
            known.delete(using=using)  # deleted from the storage by hand: store it again
            known = None
        elif _check_stored(storage, known.name, hexd, size):
            return known.name
        else:
            # Rotted on the server's disk: not held any more (the sender's receipts ask
            # for it), and repaired under its own name once a good copy arrives.
            _mark_damaged(hexd, key, known.name)
    try:
        source, close = _source(hexd, size, name, using)
    except AttachmentError:
        if known is not None:
            raise AttachmentError(
                f"{field.name}: the stored copy of {name} ({hexd[:12]}..., {known.name}) is damaged "
                "and no good copy is here; the site is asked to send it again (receipt), and "
                "the record applies once it arrives") from None
        raise
    if known is not None:
        # The damaged file goes; the good bytes take its name, so the rows that
        # already point at it are whole again.
        storage.delete(known.name)
        name = known.name
    try:
        reader = _Hashing(source)
        stored = storage.save(name, File(reader, name=os.path.basename(name)),
                              max_length=field.max_length)
    finally:
        close()
    if reader.digest() != hexd or reader.count != size:
        storage.delete(stored)
        incoming = incoming_store("")
        incoming.remove(hexd)  # the staged copy is damaged: a good one must come again
        raise AttachmentError(f"{field.name}: the received copy of {name} ({hexd[:12]}...) is damaged; "
                              "it was removed: retry once a good copy arrived")
    if not _check_stored(storage, stored, hexd, size):
        storage.delete(stored)
        raise AttachmentError(f"{field.name}: the storage did not keep {name} ({hexd[:12]}...) intact")
    if known is not None:
        known.name = stored
        known.save(using=using, update_fields=["name"])
        transaction.on_commit(lambda: clear_damaged(hexd, key), using=using)
    else:
        ServerFile.objects.using(using).create(sha256=hexd, storage=key, name=stored, size=size,
                                               field=f"{field.model._meta.label}.{field.name}")
    # The received copy is not needed once this is committed (a later need reads the
    # stored one); a rolled-back savepoint drops this callback, keeping the copy.
    transaction.on_commit(lambda: incoming_store("").remove(hexd), using=using)
    return stored


def _source(hexd: str, size: int, name: str, using: str):
    """An open file with the blob's bytes and its closer: the incoming copy, or a
    copy this server already stored in another storage."""
    from django.apps import apps

    from django_adapter.models import ServerFile

    store = incoming_store("")
    if store.has(hexd):
        f = store.open(hexd)
        return f, f.close
    for other in ServerFile.objects.using(using).filter(sha256=hexd):
        if damaged(hexd, other.storage):
            continue
        label, _, fname = other.field.rpartition(".")
        try:
            storage = apps.get_model(label)._meta.get_field(fname).storage
            f = storage.open(other.name, "rb")
        except Exception:  # noqa: BLE001 - gone or unreadable: try the next
            continue
        return f, f.close
    have = store.received(hexd)
    raise AttachmentError(f"the file {name} ({hexd[:12]}..., {size:,} bytes) has not arrived "
                          f"({have:,} bytes received); retry once a bundle brought it")


def _damaged_marker(hexd: str, key: str) -> Path:
    return root() / "damaged" / f"{hexd}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def damaged(hexd: str, key: str) -> bool:
    """Whether the stored copy of ``hexd`` in the storage ``key`` was found damaged
    and not repaired yet.

    A file marker, not a column: the damage is found while a record is applied,
    inside the savepoint that the record's failure rolls back, and what was found
    about the disk must outlive that (the receipts then ask for the file)."""
    return _damaged_marker(hexd, key).exists()


def clear_damaged(hexd: str, key: str) -> None:
    _damaged_marker(hexd, key).unlink(missing_ok=True)


def _mark_damaged(hexd: str, key: str, name: str) -> None:
    marker = _damaged_marker(hexd, key)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{key}\n{name}\n")


def _check_stored(storage, name: str, hexd: str, size: int) -> bool:
    try:
        with storage.open(name, "rb") as f:
            digest, got = blobs.hash_file(f)
    except OSError:
        return False
    return digest.hex() == hexd and got == size


class _Hashing:
    """A read-only file that hashes what is read from it."""

    def __init__(self, f):
        self._f, self._h, self.count = f, hashlib.sha256(), 0

    def read(self, n=-1):
        data = self._f.read(n)
        self._h.update(data)
        self.count += len(data)
        return data

    def digest(self) -> str:
        return self._h.hexdigest()

    def seek(self, *args):  # File.chunks() rewinds before reading: allowed at the start only
        if self.count:
            raise OSError("cannot rewind a file being hashed")
        return self._f.seek(*args)

    def tell(self):
        return self._f.tell()

    def close(self):
        pass


# ------------------------------------------------------- what receipts say (server)


def file_models() -> list[str]:
    """Labels of the synced models with file fields: the only ledger rows that can
    need a file."""
    from django.apps import apps

    from django_adapter.serialization import is_synced

    return sorted(m._meta.label_lower for m in apps.get_models()
                  if is_synced(m) and file_fields(m._meta.concrete_model))


def held(digests, using: str) -> set[str]:
    """Of these SHA-256 hex digests, those this server holds verified: a complete
    received copy (checked against its digest when its last chunk came), or a copy
    stored through a field's storage (read back and checked when stored, and each
    time a row reuses it) not since found damaged."""
    from django_adapter.models import ServerFile

    digests = list(dict.fromkeys(digests))
    store = incoming_store("")
    out = {d for d in digests if store.has(d)}
    rest = [d for d in digests if d not in out]
    for i in range(0, len(rest), 1000):
        for hexd, key in (ServerFile.objects.using(using)
                          .filter(sha256__in=rest[i:i + 1000]).values_list("sha256", "storage")):
            if not damaged(hexd, key):
                out.add(hexd)
    return out


def rows_needing_files(using: str, statuses, sender: str | None = None):
    """(ledger row id, tx id, the digests its record names) of the rows in
    ``statuses`` whose model has file fields, a batch at a time."""
    from django_adapter.codec import load
    from django_adapter.models import IncomingTransaction

    labels = file_models()
    if not labels:
        return
    rows = IncomingTransaction.objects.using(using).filter(status__in=statuses, tx_name__in=labels)
    if sender is not None:
        rows = rows.filter(sender=sender)
    for pk, tx_id, tx, fmt in rows.order_by("id").values_list("id", "tx_id", "tx", "format").iterator(
            chunk_size=500):
        try:
            digests = record_digests(load(tx, fmt))
        except Exception:  # noqa: BLE001 - an undecodable record needs no file
            continue
        if digests:
            yield pk, tx_id, digests


def receipt_files(fingerprint: str, using: str) -> tuple[list[bytes], list[bytes]]:
    """(held, needed) SHA-256 digests for a sender's receipts (RECEIPTS.md §3.7).

    Held: the files its bundles carried or referenced (``SenderFile``) that this
    server holds, verified.  Needed: the files its failed transactions name that
    this server does not hold (never received, or found damaged): the site sends
    them again, and the transaction is retried when they arrive.  Read a batch at
    a time; the receipts split them (bundlekit.receipt.split_files)."""
    from django_adapter.models import SenderFile, TxStatus

    have: list[bytes] = []
    last = 0
    while True:
        batch = list(SenderFile.objects.using(using).filter(fingerprint=fingerprint, id__gt=last)
                     .order_by("id").values_list("id", "sha256")[:1000])
        if not batch:
            break
        last = batch[-1][0]
        got = held([h for _, h in batch], using)
        have.extend(bytes.fromhex(h) for _, h in batch if h in got)
    need: set[str] = set()
    for _, _, digests in rows_needing_files(using, [TxStatus.FAILED], fingerprint):
        missing = set(digests) - held(digests, using)
        need.update(missing)
    return have, sorted(bytes.fromhex(h) for h in need)


def waiting_for(fingerprint: str, arrived, using: str) -> list:
    """Tx ids of the sender's failed transactions that name a file of ``arrived``
    (digests a bundle just completed) and whose files are now all held: what the
    import retries at once (django_adapter.intake)."""
    from django_adapter.models import TxStatus

    arrived = set(arrived)
    if not arrived:
        return []
    found = []
    for _, tx_id, digests in rows_needing_files(using, [TxStatus.FAILED], fingerprint):
        if arrived & set(digests) and held(digests, using) == set(digests):
            found.append(tx_id)
    return found
