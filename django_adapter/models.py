"""Models of the sync ledger, both ends.

Site side: ``OutgoingTransaction`` (one row per captured change, in capture order),
``ExportChainState`` and ``ExportedBundle`` (what was sealed, with which seq).
Server side: ``ImportedBundle`` (one row per bundle received), ``SenderState``
(per-sender apply position, also the per-sender lock), ``IncomingTransaction``
(the ledger: one row per transaction id, ever) and ``ConflictingTransaction``
(a second, different body under a transaction id already in the ledger).

Field names of edc-sync's ``OutgoingTransaction``/``IncomingTransaction`` are kept
where they exist so code written for edc-sync keeps working.
"""

from __future__ import annotations

import datetime
import uuid

from django.db import models, router, transaction

from django_adapter.codec import RECORD_FORMAT, load


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


# --------------------------------------------------------------------- mixin


class SyncQuerySet(models.QuerySet):
    """Queryset whose bulk writes are captured too (plain ``QuerySet.update()`` and
    ``bulk_create()`` send no signals, so they would bypass capture)."""

    def update(self, **kwargs):
        from django_adapter import capture

        if not capture.is_enabled():
            return super().update(**kwargs)
        with transaction.atomic(using=self.db, savepoint=False):
            return capture.captured_update(self, kwargs, super().update)

    update.alters_data = True

    def bulk_create(self, objs, *args, **kwargs):
        from django_adapter import capture

        if not capture.is_enabled():
            return super().bulk_create(objs, *args, **kwargs)
        capture.check_bulk_create(self.model, kwargs)
        with transaction.atomic(using=self.db, savepoint=False):
            return capture.captured_bulk_create(self, objs, args, kwargs, super().bulk_create)

    bulk_create.alters_data = True


class SyncManager(models.Manager.from_queryset(SyncQuerySet)):
    """Base for the default manager of a synced model; add ``get_by_natural_key``."""


class SyncModelMixin(models.Model):
    """Every insert, update and delete of a concrete subclass is captured as an
    ``OutgoingTransaction`` on the same database, in the same DB transaction.

    Subclasses need ``natural_key()`` and a default manager with
    ``get_by_natural_key()`` (``manage.py check`` says so otherwise): autoincrement
    pks differ between the laptop and the server, so rows are found by natural key.
    """

    objects = SyncManager()

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs):
        # Remember the values as loaded (a tuple reference, no copy): an update that
        # renames the object then carries its natural key from before the change.
        # (**kwargs: Django 6.1 passes fetch_mode.)
        obj = super().from_db(db, field_names, values, **kwargs)
        obj._bk_loaded = (tuple(field_names), tuple(values))
        return obj

    def save_base(self, *args, **kwargs):
        # Django sends post_save after its own transaction block has ended; wrapping
        # the whole save keeps the change and its OutgoingTransaction in one commit.
        using = kwargs.get("using") or router.db_for_write(self.__class__, instance=self)
        kwargs["using"] = using
        with transaction.atomic(using=using, savepoint=False):
            return super().save_base(*args, **kwargs)


# ---------------------------------------------------------------- site side


class OutgoingTransactionQuerySet(models.QuerySet):
    def copy_to_incoming_transaction(self, using: str):
        """edc-sync's direct route: copy these rows into another alias's ledger.

        Rows already in the target ledger are counted as duplicates (or conflicts
        when the content differs), never stored twice.  Returns a ``CopyResult``.
        """
        from django_adapter.apply import copy_to_incoming

        return copy_to_incoming(self, using)


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


class IncomingTransactionQuerySet(models.QuerySet):
    def deserialize(self, custom_device=None, check_hostname=True):
        """edc-sync's apply call: apply the pending rows of this queryset in order.

        ``check_hostname`` (edc-sync's default True) skips transactions produced on
        this very host, so a laptop never re-applies its own changes; ``custom_device``
        names the host to compare against instead of this machine's hostname.
        Returns an ``ApplyResult`` with counts and one message per failure.
        """
        from django_adapter.apply import apply_queryset

        return apply_queryset(self, custom_device=custom_device, check_hostname=check_hostname)


class IncomingTransaction(models.Model):
    """The server's ledger: a transaction id is stored, and applied, at most once."""

    id = models.BigAutoField(primary_key=True)
    tx_id = models.UUIDField(unique=True)
    tx_name = models.CharField(max_length=255, db_index=True)
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

    def __str__(self):
        return f"{self.action} {self.tx_name} {self.tx_pk} ({self.status})"

    @property
    def record(self) -> dict:
        return load(self.tx, self.format)


class ConflictingTransaction(models.Model):
    """A transaction id that arrived again with different content: kept, not applied."""

    tx_id = models.UUIDField(db_index=True)
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
