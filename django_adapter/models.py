"""Models of the sync ledger, both ends.

Site side: ``OutgoingTransaction`` (one row per captured change, in capture order),
``ExportChainState`` and ``ExportedBundle`` (what was sealed, with which seq).
Server side: ``ImportedBundle`` (one row per bundle received), ``SenderState``
(per-sender apply position, also the per-sender lock), ``IncomingTransaction``
(the ledger: one row per transaction id, ever) and ``ConflictingTransaction``
(a second, different body under a transaction id already in the ledger).

Field names of edc-sync's ``OutgoingTransaction``/``IncomingTransaction`` are kept
where they exist so code written for edc-sync keeps working, and so are its
queryset calls (``django_adapter.edc_compat``).

This module holds the ledger's tables only.  ``SyncModelMixin``, ``SyncManager``
and ``SyncQuerySet`` live in ``django_adapter.mixins`` and ``managers``; they are
importable from here too, as edc-sync users expect (``from django_adapter.models
import SyncModelMixin``), resolved on first use so the ledger never imports the
capture machinery they need.
"""

from __future__ import annotations

import datetime
import uuid

from django.db import models

from django_adapter.codec import RECORD_FORMAT, load
from django_adapter.edc_compat import IncomingTransactionQuerySet, OutgoingTransactionQuerySet


class Action(models.TextChoices):
    INSERT = "I", "insert"
    UPDATE = "U", "update"
    DELETE = "D", "delete"


class TxStatus(models.TextChoices):
    """Outcome of one transaction at the server.

    ``duplicate`` and ``conflict`` are outcomes of an *arrival* (the ledger row
    already existed), so they appear in reports and on ``ConflictingTransaction``,
    never as the status of the ledger row itself.
    """

    PENDING = "pending", "pending"
    APPLIED = "applied", "applied"
    DUPLICATE = "duplicate", "duplicate"
    STALE = "stale", "stale (a newer change was already applied)"
    CONFLICT = "conflict", "conflict (same id, different content)"
    FAILED = "failed", "failed"
    DELETED_MISSING = "deleted-missing", "delete of a missing object"
    DISCARDED = "discarded", "discarded by a person (bundle resolve --discard)"


class BundleStatus(models.TextChoices):
    APPLIED = "applied", "applied"
    WAITING = "waiting-for-gap", "waiting for an earlier bundle"
    FORK = "quarantined-fork", "quarantined: fork of the sender's chain"
    FAILED = "failed", "failed"


class BundleRoute(models.TextChoices):
    """By which route a bundle first reached this server (``django_adapter.intake``)."""

    INBOX = "inbox", "watched inbox (bundle watch)"
    IMPORT = "import", "bundle import"
    REST = "rest", "REST upload (bundle push)"
    UPLOAD = "upload", "upload page"


# ---------------------------------------------------------------- site side


class OutgoingTransaction(models.Model):
    """One captured change, in capture order (``id``)."""

    id = models.BigAutoField(primary_key=True)
    tx_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tx_name = models.CharField(max_length=255, db_index=True, help_text="model label")
    tx_pk = models.CharField(max_length=255, help_text="pk of the object on this database")
    producer = models.CharField(max_length=255)
    action = models.CharField(max_length=1, choices=Action.choices)
    timestamp = models.DateTimeField()
    tx = models.BinaryField(help_text="the packed record")
    format = models.PositiveSmallIntegerField(default=RECORD_FORMAT)
    is_consumed_server = models.BooleanField(default=False, db_index=True)
    consumed_datetime = models.DateTimeField(null=True, blank=True)
    #: What the server's last receipt said became of this change (docs/WORKFLOW.md,
    #: "Outcomes"); blank until a receipt names it.  Only outcomes the server holds
    #: set ``is_consumed_server``; the others keep the row here, with the reason.
    server_outcome = models.CharField(max_length=20, blank=True, default="", db_index=True)
    server_reason = models.TextField(blank=True, default="")
    exported = models.BooleanField(default=False, db_index=True)
    exported_bundle = models.ForeignKey(
        "ExportedBundle", null=True, blank=True, on_delete=models.PROTECT, related_name="transactions"
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = OutgoingTransactionQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.action} {self.tx_name} {self.tx_pk} ({self.tx_id})"

    @property
    def record(self) -> dict:
        return load(self.tx, self.format)


class ExportChainState(models.Model):
    """The site's position in its own bundle chain: last sealed seq and digest.

    One row per signing key; locked (select_for_update) while exporting so two
    exports never seal the same seq.
    """

    fingerprint = models.CharField(max_length=128, unique=True)
    site = models.CharField(max_length=255)
    last_seq = models.BigIntegerField(default=0)
    last_digest = models.CharField(max_length=128, null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.site} seq {self.last_seq}"


class ExportedBundle(models.Model):
    """A bundle sealed from this site's outgoing transactions."""

    fingerprint = models.CharField(max_length=128, db_index=True)
    seq = models.BigIntegerField()
    digest = models.CharField(max_length=128)
    bundle_id = models.CharField(max_length=64, unique=True)
    file_name = models.CharField(max_length=255)
    record_count = models.IntegerField()
    first_outgoing_id = models.BigIntegerField()
    last_outgoing_id = models.BigIntegerField()
    acknowledged = models.BooleanField(default=False, db_index=True)
    acknowledged_datetime = models.DateTimeField(null=True, blank=True)
    sealed = models.DateTimeField(auto_now_add=True)
    #: The outgoing ids sealed into it, as [first id, count] runs in position order:
    #: a receipt names transactions by position, and positions must still map to
    #: rows after some of them were pruned.
    id_ranges = models.JSONField(default=list, blank=True)
    #: The last receipt applied: {"as_of": its time, "runs": [[first, count, outcome,
    #: reason], ...]}; an older receipt read later changes nothing.
    server_outcomes = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["fingerprint", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["fingerprint", "seq"], name="bk_exported_unique_seq"),
        ]

    def __str__(self):
        return f"seq {self.seq} ({self.file_name})"


class SiteClock(models.Model):
    """How far this site's clock was found behind the server's (from the newest
    receipt applied); changes are stamped that much later (``django_adapter.clock``).
    One row."""

    offset = models.DurationField(default=datetime.timedelta(0))
    server_time = models.DateTimeField(null=True, blank=True, help_text="the receipt's time")
    observed = models.DateTimeField(null=True, blank=True, help_text="this clock, then")

    def __str__(self):
        return f"clock offset {self.offset}"


# -------------------------------------------------------------- server side


class SenderState(models.Model):
    """Where applying stopped for one sender; the row is the per-sender lock."""

    fingerprint = models.CharField(max_length=128, unique=True)
    site = models.CharField(max_length=255)
    last_seq = models.BigIntegerField(default=0)
    last_digest = models.CharField(max_length=128, null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.site} applied through seq {self.last_seq}"


class ImportedBundle(models.Model):
    bundle_id = models.CharField(max_length=64, unique=True)
    fingerprint = models.CharField(max_length=128, db_index=True)
    site = models.CharField(max_length=255, db_index=True)
    seq = models.BigIntegerField()
    digest = models.CharField(max_length=128)
    prev = models.CharField(max_length=128, null=True, blank=True)
    status = models.CharField(max_length=20, choices=BundleStatus.choices, db_index=True)
    record_count = models.IntegerField(default=0)
    applied_count = models.IntegerField(default=0)
    duplicate_count = models.IntegerField(default=0)
    stale_count = models.IntegerField(default=0)
    conflict_count = models.IntegerField(default=0)
    failed_count = models.IntegerField(default=0)
    deleted_missing_count = models.IntegerField(default=0)
    file_name = models.CharField(max_length=255)
    received = models.DateTimeField(auto_now_add=True)
    applied_datetime = models.DateTimeField(null=True, blank=True)
    report = models.JSONField(default=dict, blank=True)
    sealed = models.DateTimeField(
        null=True, blank=True, help_text="when the site sealed it, by the site's clock (manifest)"
    )
    settled = models.DateTimeField(
        null=True, blank=True,
        help_text="when a person set this quarantined fork aside (a Decision says who and why)",
    )
    schema = models.JSONField(
        null=True, blank=True,
        help_text="migrations of the synced apps the site had applied (FORMAT.md 4.5); "
        "null for a bundle that states none",
    )
    #: How it first arrived; later copies by other routes are duplicates and leave
    #: it as it is.  Empty for bundles imported before routes were recorded.
    route = models.CharField(max_length=16, choices=BundleRoute.choices, blank=True, default="")

    class Meta:
        ordering = ["fingerprint", "seq", "id"]
        indexes = [models.Index(fields=["fingerprint", "seq"], name="bk_imported_sender_seq")]
        # The data manager's pages (django_adapter.dashboard): looking and acting are
        # separate, so a monitor may see every page without retrying, resolving or
        # uploading anything.  Granted with Django's own users, groups and admin.
        permissions = [
            ("view_dashboard", "Can view the sync dashboard"),
            ("act_on_dashboard", "Can retry, resolve and upload bundles from the sync dashboard"),
        ]

    def __str__(self):
        return f"{self.site} seq {self.seq} ({self.status})"


class IncomingTransaction(models.Model):
    """The server's ledger: a transaction id of a sender is stored, and applied, at most once."""

    id = models.BigAutoField(primary_key=True)
    tx_id = models.UUIDField()
    sender = models.CharField(
        max_length=128, blank=True, default="",
        help_text="fingerprint of the key that signed the bundle ('' when copied without one)",
    )
    # No index of its own: ``bk_incoming_object`` starts with it.
    tx_name = models.CharField(max_length=255)
    tx_pk = models.CharField(max_length=255)
    producer = models.CharField(max_length=255, db_index=True)
    action = models.CharField(max_length=1, choices=Action.choices)
    timestamp = models.DateTimeField()
    tx = models.BinaryField()
    format = models.PositiveSmallIntegerField(default=RECORD_FORMAT)
    digest = models.CharField(max_length=64)
    object_key = models.CharField(max_length=64)
    status = models.CharField(
        max_length=20, choices=TxStatus.choices, default=TxStatus.PENDING, db_index=True
    )
    reason = models.TextField(blank=True, default="")
    is_consumed = models.BooleanField(default=False, db_index=True)
    consumed_datetime = models.DateTimeField(null=True, blank=True)
    bundle = models.ForeignKey(
        ImportedBundle, null=True, blank=True, on_delete=models.PROTECT, related_name="transactions"
    )
    position = models.IntegerField(default=0, help_text="record index within its bundle")
    received = models.DateTimeField(auto_now_add=True)

    objects = IncomingTransactionQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["tx_name", "object_key", "timestamp"], name="bk_incoming_object"),
        ]
        constraints = [
            # Transaction ids are scoped by the key that signed them: one sender can
            # never take, block or overwrite another sender's transaction.
            models.UniqueConstraint(fields=["sender", "tx_id"], name="bk_incoming_sender_tx"),
        ]

    def __str__(self):
        return f"{self.action} {self.tx_name} {self.tx_pk} ({self.status})"

    @property
    def record(self) -> dict:
        return load(self.tx, self.format)


class ConflictingTransaction(models.Model):
    """A transaction id that arrived again with different content: kept, not applied."""

    tx_id = models.UUIDField(db_index=True)
    sender = models.CharField(max_length=128, blank=True, default="")
    tx_name = models.CharField(max_length=255)
    digest = models.CharField(max_length=64)
    existing_digest = models.CharField(max_length=64)
    tx = models.BinaryField()
    format = models.PositiveSmallIntegerField(default=RECORD_FORMAT)
    bundle = models.ForeignKey(
        ImportedBundle, null=True, blank=True, on_delete=models.PROTECT, related_name="conflicts"
    )
    #: Record index within its bundle (-1: not known, rows from before it was kept).
    position = models.IntegerField(default=-1)
    #: "" until a person settles it (``bundle resolve``): keep-server, take-site, discard.
    resolution = models.CharField(max_length=20, blank=True, default="")
    received = models.DateTimeField(auto_now_add=True)

    @property
    def record(self) -> dict:
        return load(self.tx, self.format)

    def __str__(self):
        return f"conflict {self.tx_id}"


class Choice(models.TextChoices):
    """What a person decided about a transaction in the review queue."""

    KEEP_SERVER = "keep-server", "keep the server's version"
    TAKE_SITE = "take-site", "take the site's version"
    DISCARD = "discard", "discard the site's change"
    RETRY = "retry", "apply again"


class Decision(models.Model):
    """Who settled which transaction, when, how and why (``bundle resolve`` and
    ``bundle retry``).  Evidence, like the ledger: never edited; the outcome it led
    to travels back to the site in the next receipt."""

    tx_id = models.UUIDField(db_index=True)
    choice = models.CharField(max_length=20, choices=Choice.choices)
    outcome_before = models.CharField(max_length=20)
    outcome_after = models.CharField(max_length=20)
    who = models.CharField(max_length=150)
    note = models.TextField()
    decided = models.DateTimeField(auto_now_add=True)
    site = models.CharField(max_length=255, blank=True, default="")
    sender = models.CharField(max_length=128, blank=True, default="")
    tx_name = models.CharField(max_length=255, blank=True, default="")
    incoming = models.ForeignKey(
        IncomingTransaction, null=True, blank=True, on_delete=models.PROTECT,
        related_name="decisions",
    )
    conflict = models.ForeignKey(
        ConflictingTransaction, null=True, blank=True, on_delete=models.PROTECT,
        related_name="decisions",
    )

    class Meta:
        ordering = ["decided", "id"]

    def __str__(self):
        return f"{self.choice} {self.tx_id} by {self.who}"

# --------------------------------------------------------------- attachments
# The files behind file fields (django_adapter/attachments.py, FORMAT.md §5.5).


class SiteFile(models.Model):
    """Site: the content of a file captured with a transaction, copied aside under
    its SHA-256 until every bundle that carried it is acknowledged."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=255, blank=True)
    name = models.CharField(max_length=255, db_index=True, help_text="first name saved under")
    copy = models.CharField(max_length=1000, blank=True, help_text="the copy aside; empty once pruned")
    first_bundle = models.ForeignKey(ExportedBundle, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    last_bundle = models.ForeignKey(ExportedBundle, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+", help_text="the bundle with its last chunk")
    captured = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.name} ({self.sha256[:12]})"


class SiteFileServer(models.Model):
    """Site: what a server's receipt last said of a captured file (RECEIPTS.md §3.7),
    per server key: it holds the file (so exports leave its bytes out and its copy
    aside may be pruned), or it needs the file sent again (missing or damaged there).
    Only a verified receipt from a receipt issuer writes these rows."""

    HELD = "held"
    NEEDED = "needed"
    #: Sent again after a receipt said ``needed``: not sent once more unless a newer
    #: receipt still needs it.
    RESENT = "resent"

    file = models.ForeignKey(SiteFile, on_delete=models.CASCADE, related_name="servers")
    server = models.CharField(max_length=128, help_text="the receipt issuer's key fingerprint")
    state = models.CharField(max_length=8, choices=[(HELD, HELD), (NEEDED, NEEDED), (RESENT, RESENT)])
    as_of = models.DateTimeField(help_text="the signed time of the receipt that said so")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["file", "server"], name="bk_sitefile_server")]

    def __str__(self):
        return f"{self.file_id} {self.state} at {self.server}"


class OutgoingFile(models.Model):
    """Site: which captured transaction needs which file."""

    outgoing = models.ForeignKey(OutgoingTransaction, on_delete=models.CASCADE, related_name="+")
    file = models.ForeignKey(SiteFile, on_delete=models.PROTECT, related_name="+")


class ServerFile(models.Model):
    """Server: a file stored once per storage, shared by every row that has it."""

    sha256 = models.CharField(max_length=64)
    storage = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    field = models.CharField(max_length=255, help_text="model label and field it was first stored for")
    stored = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sha256", "storage"], name="bk_serverfile_once")]

    def __str__(self):
        return f"{self.name} ({self.sha256[:12]})"


class SenderFile(models.Model):
    """Server: a file (by SHA-256) that a sender's bundles carried or referenced.
    A sender's receipts say which of these the server holds, and which it needs
    sent again (RECEIPTS.md §3.7)."""

    fingerprint = models.CharField(max_length=128, help_text="the sender's key fingerprint")
    sha256 = models.CharField(max_length=64)
    bundle = models.ForeignKey(ImportedBundle, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", help_text="the first bundle that named it")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fingerprint", "sha256"], name="bk_senderfile_once"),
        ]

    def __str__(self):
        return f"{self.sha256[:12]} from {self.fingerprint}"


_MOVED = {
    "SyncModelMixin": "django_adapter.mixins",
    "SyncManager": "django_adapter.managers",
    "SyncQuerySet": "django_adapter.managers",
}


def __getattr__(name):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'django_adapter.models' has no attribute {name!r}")
