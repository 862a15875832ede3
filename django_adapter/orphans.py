"""The server's orphan sweep: attachment files that nothing needs any more.

Files arrive with bundles and stay in two places (django_adapter/attachments.py):
the received copies in ``ATTACHMENTS/incoming`` (complete files named by their
SHA-256, and parts of files still coming), and the copies stored through the
file fields' storages (``ServerFile``).  Most go by themselves: a received copy
is dropped once the row's stored one is committed.  What stays behind is an
*orphan*: a stored file no row points at any more (its rows were changed or
deleted, as Django itself leaves them), or a received copy whose transactions
were discarded.

A file is an orphan only when **no row** of any model with a file field on its
storage names it, and **no transaction that may still be applied** names its
digest: a ``pending`` ledger row (waiting for a gap), a ``failed`` one (``bundle
retry`` or a good copy arriving applies it later) or a conflict nobody settled
(``take-site`` would apply it).  Received copies and parts younger than
``min_age`` are left alone as well: a file may come in one bundle and the
transaction that names it in the next.

:func:`sweep` lists them (``bundle files``) and, with ``remove=True``, deletes
them (``bundle files --sweep``): each stored one under a lock on its
``ServerFile`` row, after checking again that no row names it, which is the lock
an import takes before it reuses a stored file.  Files in a storage that
bundlekit did not store (no ``ServerFile``) are never touched.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps
from django.db import models as dj_models
from django.db import transaction

from django_adapter import attachments
from django_adapter.codec import load
from django_adapter.models import ConflictingTransaction, ServerFile, TxStatus

#: Received copies and parts younger than this are never orphans (``--min-age``).
DEFAULT_MIN_AGE = dt.timedelta(hours=24)
_BLOB = re.compile(r"[0-9a-f]{64}")
_PART = re.compile(r"([0-9a-f]{64})\.[0-9]+\.part")
_BATCH = 500


@dataclass
class FilesReport:
    """What ``bundle files`` found: counts, the orphans, and what was removed."""

    stored: int = 0  # ServerFile rows
    received: int = 0  # complete received copies and parts
    needed: int = 0  # digests named by transactions that may still be applied
    orphans: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    swept: bool = False

    @property
    def orphan_bytes(self) -> int:
        return sum(o["size"] for o in self.orphans)

    def to_dict(self) -> dict:
        return {**self.__dict__, "orphan_bytes": self.orphan_bytes}


def needed_digests(using: str) -> set[str]:
    """Digests named by the transactions that may still be applied: ledger rows
    pending or failed, and conflicts nobody settled (read a batch at a time)."""
    need: set[str] = set()
    for _, _, digests in attachments.rows_needing_files(using, [TxStatus.PENDING, TxStatus.FAILED]):
        need.update(digests)
    labels = attachments.file_models()
    conflicts = (ConflictingTransaction.objects.using(using).filter(resolution="", tx_name__in=labels)
                 .values_list("tx", "format"))
    for tx, fmt in conflicts.iterator(chunk_size=_BATCH):
        try:
            need.update(attachments.record_digests(load(tx, fmt)))
        except Exception:  # noqa: BLE001 - an undecodable record names no file
            continue
    return need


def _fields_on(key: str) -> list:
    """(model, field name) of every file field, synced or not, on the storage ``key``."""
    found = []
    for model in apps.get_models():
        for f in model._meta.concrete_fields:
            if isinstance(f, dj_models.FileField) and attachments.storage_key(f.storage) == key:
                found.append((model, f.name))
    return found


def _named(rows: list, using: str) -> set[int]:
    """Ids of the ServerFile rows among ``rows`` that some row of a model names."""
    named: set[int] = set()
    by_key: dict[str, list] = {}
    for r in rows:
        by_key.setdefault(r.storage, []).append(r)
    for key, group in by_key.items():
        names = {r.name: r.pk for r in group}
        for model, fname in _fields_on(key):
            hits = (model._base_manager.using(using).filter(**{f"{fname}__in": list(names)})
                    .values_list(fname, flat=True).distinct())
            named.update(names[h] for h in hits if h in names)
    return named


def _storage_of(row: ServerFile):
    label, _, fname = row.field.rpartition(".")
    try:
        return apps.get_model(label)._meta.get_field(fname).storage
    except Exception:  # noqa: BLE001 - the model or field is gone
        return None


def _received(min_age: dt.timedelta) -> list[dict]:
    """Complete received copies and parts older than ``min_age``."""
    base = attachments.root() / "incoming"
    if not base.is_dir():
        return []
    cutoff = time.time() - min_age.total_seconds()
    found = []
    candidates = [(p, _BLOB.fullmatch(p.name)) for p in base.iterdir()]
    parts = base / "parts"
    if parts.is_dir():
        for folder in parts.iterdir():
            if folder.is_dir():
                candidates += [(p, _PART.fullmatch(p.name)) for p in folder.iterdir()]
    for path, match in candidates:
        if match is None or not path.is_file():
            continue
        st = path.stat()
        hexd = match.group(1) if match.groups() else match.group(0)
        found.append({"kind": "part" if match.groups() else "received", "sha256": hexd,
                      "name": str(path.relative_to(base)), "size": st.st_size,
                      "young": st.st_mtime > cutoff, "path": path})
    return sorted(found, key=lambda f: f["name"])


def sweep(using: str = "default", *, remove: bool = False,
          min_age: dt.timedelta = DEFAULT_MIN_AGE) -> FilesReport:
    """List (and with ``remove``, delete) the orphan attachment files; see the module doc."""
    report = FilesReport(swept=remove)
    need = needed_digests(using)
    report.needed = len(need)
    last = 0
    while True:
        rows = list(ServerFile.objects.using(using).filter(id__gt=last).order_by("id")[:_BATCH])
        if not rows:
            break
        last = rows[-1].pk
        report.stored += len(rows)
        named = _named(rows, using)
        for r in rows:
            if r.pk in named or r.sha256 in need:
                continue
            entry = {"kind": "stored", "sha256": r.sha256, "name": r.name, "size": r.size,
                     "storage": r.storage}
            report.orphans.append(entry)
            if remove and _remove_stored(r.pk, using):
                report.removed.append(entry)
    received = _received(min_age)
    report.received = len(received)
    for f in received:
        if f.pop("young") or f["sha256"] in need:
            continue
        path: Path = f.pop("path")
        report.orphans.append(f)
        if remove:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            report.removed.append(f)
    return report


def _remove_stored(pk: int, using: str) -> bool:
    """Delete one stored orphan if, under the lock of its row (which an import takes
    before it reuses a stored file), still no row names it.

    The file goes before the commit: should the commit fail, a ServerFile naming
    a missing file is what an import already handles (it stores the file again).
    A transaction that failed since the listing and names the digest loses
    nothing either: it finds no stored copy, and the sender's receipt asks for
    the file again."""
    with transaction.atomic(using=using):
        row = ServerFile.objects.using(using).select_for_update().filter(pk=pk).first()
        if row is None or _named([row], using):
            return False
        storage = _storage_of(row)
        row.delete(using=using)
        if storage is not None:
            storage.delete(row.name)
        attachments.clear_damaged(row.sha256, row.storage)
    return True


__all__ = ["DEFAULT_MIN_AGE", "FilesReport", "needed_digests", "sweep"]
