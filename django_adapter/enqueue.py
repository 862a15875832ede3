"""Adding sync to a project that already has data: enqueue the existing rows.

Capture sees changes from the moment ``django_adapter`` is installed; rows saved
before that have no outgoing transaction, so the server would never hear of them.
:func:`enqueue_existing` writes one insert per such row, exactly the record
capture writes when a row is created, so the next ``bundle export`` carries them.

- A row that already has an outgoing transaction (captured since sync was
  added, or enqueued by an earlier run) is skipped: running it twice adds
  nothing.  Run it before the first ``bundle prune``: prune deletes the
  confirmed transactions this test relies on.
- Models go in dependency order (the targets of foreign keys and m2m before the
  rows pointing at them), rows in primary-key order; the importer also defers a
  reference to a row later in the same bundle.
- Multi-table inheritance: a row of a parent model that is really a row of a
  synced child model travels once, as the child (as capture records it).  Proxy
  models travel as their concrete model.
- Each batch of rows and their transactions commit together, so an interrupted
  run leaves whole batches behind and a second run finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.db import transaction

from django_adapter.capture import check_model, record_change
from django_adapter.serialization import is_synced, synced_fields, synced_m2m

#: Rows written per database transaction.
BATCH = 500


@dataclass
class EnqueueReport:
    """What :func:`enqueue_existing` did, per model label: ``enqueued`` rows and
    ``skipped`` ones (they had an outgoing transaction already)."""

    enqueued: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.enqueued.values())

    def to_dict(self) -> dict:
        return {"enqueued": dict(self.enqueued), "skipped": dict(self.skipped),
                "total": self.total, "dry_run": self.dry_run}


def synced_models(labels: Iterable[str] | None = None) -> list:
    """The concrete synced models (all, or those named ``app_label.Model``), targets
    of references first.  An unknown or unsynced label is a ``LookupError``."""
    if labels:
        chosen = []
        for label in labels:
            model = apps.get_model(label)
            if not is_synced(model):
                raise LookupError(f"{model._meta.label} is not a synced model")
            chosen.append(model._meta.concrete_model)
    else:
        chosen = [m for m in apps.get_models() if is_synced(m) and not m._meta.proxy]
    return _dependency_order(list(dict.fromkeys(chosen)))


def _dependency_order(models: list) -> list:
    """Targets before the models that point at them; a cycle keeps label order."""
    remaining = sorted(models, key=lambda m: m._meta.label)
    wanted = set(remaining)

    def targets(model) -> set:
        refs = [f for f in synced_fields(model) if f.many_to_one or f.one_to_one]
        out = {f.remote_field.model._meta.concrete_model for f in refs}
        out |= {f.remote_field.model._meta.concrete_model for f in synced_m2m(model)}
        out |= set(model._meta.get_parent_list())
        return (out & wanted) - {model}

    ordered: list = []
    while remaining:
        ready = [m for m in remaining if not (targets(m) - set(ordered))]
        step = ready or remaining[:1]  # a cycle: the importer defers what it must
        ordered += step
        remaining = [m for m in remaining if m not in step]
    return ordered


def _rows(model, using: str):
    """(queryset, already) for ``model``: its rows in pk order, none that a synced
    child model owns, and the pks (as text) that have an outgoing transaction."""
    from django_adapter.models import OutgoingTransaction

    qs = model._default_manager.using(using).all()
    for child in apps.get_models():
        if (child is not model and is_synced(child) and not child._meta.proxy
                and model in child._meta.get_parent_list()):
            qs = qs.exclude(pk__in=child._default_manager.using(using).values("pk"))
    already = set(
        OutgoingTransaction.objects.using(using).filter(tx_name=model._meta.label_lower)
        .values_list("tx_pk", flat=True).distinct()
    )
    return qs.order_by("pk"), already


def count_existing(models: list, using: str = "default") -> int:
    """How many rows :func:`enqueue_existing` would write (the progress bar's total)."""
    total = 0
    for model in models:
        qs, already = _rows(model, using)
        pks = qs.values_list("pk", flat=True).iterator(chunk_size=2000)
        total += sum(1 for pk in pks if str(pk) not in already)
    return total


def enqueue_existing(
    models: list | None = None,
    *,
    using: str = "default",
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> EnqueueReport:
    """Write an insert transaction for every existing row of ``models`` (default:
    every synced model) that has none yet; ``progress(n)`` after each batch."""
    models = synced_models() if models is None else models
    report = EnqueueReport(dry_run=dry_run)
    for model in models:
        check_model(model)
        label = model._meta.label
        qs, already = _rows(model, using)
        report.enqueued[label] = report.skipped[label] = 0
        batch: list = []
        for obj in qs.iterator(chunk_size=BATCH):
            if str(obj.pk) in already:
                report.skipped[label] += 1
                continue
            batch.append(obj)
            if len(batch) == BATCH:
                _flush(batch, using, dry_run, progress)
                report.enqueued[label] += len(batch)
                batch = []
        if batch:
            _flush(batch, using, dry_run, progress)
            report.enqueued[label] += len(batch)
    return report


def _flush(objs: list, using: str, dry_run: bool, progress) -> None:
    """One batch: its transactions commit together (or, dry, are only counted)."""
    if not dry_run:
        with transaction.atomic(using=using):
            for obj in objs:
                # An old row may have M2M links already: carry them (new=False).
                record_change(obj, "I", using, new=False)
    if progress:
        progress(len(objs))


__all__ = ["BATCH", "EnqueueReport", "count_existing", "enqueue_existing", "synced_models"]
