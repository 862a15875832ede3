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

Prune: the local copy is deleted only when receipts acknowledged every bundle
that carried a chunk of it (the server refuses a bundle whose file does not
check, so an acknowledged bundle means the server holds the file).
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

    Used by the exporter: :meth:`before` gives, for one chunk of pending
    transaction ids, the files to send before each; :meth:`chunks` reads one
    from its copy.  A file is sent once per export run and never again once a
    bundle carried its last chunk (``SiteFile.last_bundle``)."""

    def __init__(self, using: str):
        self.using = using
        self.sending: set[int] = set()

    def before(self, ids: list[int]) -> dict[int, list]:
        from django_adapter.models import OutgoingFile

        out: dict[int, list] = {}
        links = (OutgoingFile.objects.using(self.using)
                 .filter(outgoing_id__in=ids, file__last_bundle__isnull=True)
                 .select_related("file").order_by("outgoing_id", "file_id"))
        for ln in links:
            if ln.file_id in self.sending or not ln.file.copy:
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
    """Chunks of these files are in ``bundle`` (the last one so far carries their end)."""
    from django_adapter.models import SiteFile

    if not file_ids:
        return
    qs = SiteFile.objects.using(using).filter(pk__in=file_ids)
    qs.filter(first_bundle__isnull=True).update(first_bundle=bundle)
    qs.update(last_bundle=bundle)


# -------------------------------------------------------------------- prune (site)


def prune_copies(using: str) -> list[str]:
    """Delete the copies of files that every bundle carrying them had acknowledged."""
    from django_adapter.models import ExportedBundle, SiteFile

    removed = []
    for row in SiteFile.objects.using(using).exclude(copy="").filter(
            last_bundle__acknowledged=True).select_related("first_bundle", "last_bundle"):
        unconfirmed = ExportedBundle.objects.using(using).filter(
            fingerprint=row.last_bundle.fingerprint, seq__gte=row.first_bundle.seq,
            seq__lte=row.last_bundle.seq, acknowledged=False).exists()
        if unconfirmed:
            continue
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


def divert(records, sender: str, *, path=None, on_chunk=None, packed: bool = False):
    """The records that are not chunk records; the chunks go into the incoming
    store as they stream by (CorruptBundle for a bad one, or beyond the per-bundle
    limit).  With ``packed``, ``records`` is an opened bundle read as pairs of a
    record and its bytes (``OpenedBundle.packed``), and pairs come out.

    What is returned still tells how far the file has been read
    (``bytes_read``, as an opened bundle does): the apply engine closes its
    windows by bytes as well as by count, which is what keeps a hostile but
    signed bundle of large records from adding up in memory."""
    return _Diverted(records, _divert(records, sender, path=path, on_chunk=on_chunk,
                                      packed=packed))


class _Diverted:
    def __init__(self, records, rest):
        self._records, self._rest = records, rest

    def __iter__(self):
        return self._rest

    @property
    def bytes_read(self):
        return getattr(self._records, "bytes_read", None)


def _divert(records, sender: str, *, path=None, on_chunk=None, packed=False):
    store = None
    limit = max_bundle_file_bytes()
    total = 0
    for item in records.packed() if packed else records:
        record = item[0] if packed else item
        if blobs.BLOB_KEY not in record:
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
            store.add(chunk)
        except CorruptBundle as e:
            if path is not None:
                e.with_path(path)
            raise
        if on_chunk is not None:
            on_chunk()


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
    known = ServerFile.objects.using(using).filter(sha256=hexd, storage=key).first()
    if known is not None:
        if storage.exists(known.name):
            return known.name
        known.delete(using=using)  # deleted from the storage by hand: store it again
    source, close = _source(hexd, size, name, using)
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
