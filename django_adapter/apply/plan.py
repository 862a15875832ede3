"""Planning a window: what each model needs, and which rows may share a stage.

A *stage* is a set of rows applied together: first every insert and update,
model by model in dependency order (referenced models first, as ``loaddata``
orders fixtures with ``sort_dependencies``), then every delete, in reverse
dependency order.  Within a model, rows keep their order, so one object's
changes never overtake each other.

Rows join the current stage in the order they come; a row that could observe
the difference between the stage's order and the arrival order starts a new
stage instead:

* a change of an object already deleted in the stage (compared loosely, as a
  case-insensitive collation would);
* an insert or update of a model that refers (directly or through other models)
  to a model with a delete in the stage: it could refer to a deleted row, or be
  a row the delete cascades to;
* a delete of a model that refers to a model already deleted in the stage (the
  stage would delete it first, where the arrival order had it cascaded).

Other models may be written before a delete that came earlier: they cannot
observe it.  Whatever this misses (a unique value freed by a delete and taken by
an insert of the same model, say) makes the stage raise, and a stage that raises
is redone row by row.

Entry-order data (participant, visit, requisition, the next participant ...) has
no deletes between its inserts and updates, so a whole window is one stage.

Models that take the per-record path instead (see ``rows.py``): multi-table
inheritance children, models that refer to themselves or sit on a cycle of
references, and unknown or unsynced models (which fail at once).
"""

from __future__ import annotations

from django.apps import apps

from django_adapter.serialization import is_synced, pk_travels, synced_fields, synced_m2m

from .naturalkeys import hashable, loose


def forward_models(model) -> set:
    """Every model ``model`` refers to, directly or through others (FK, one-to-one, m2m)."""
    seen: set = set()
    todo = [model._meta.concrete_model]
    while todo:
        m = todo.pop()
        for f in m._meta.get_fields():
            if not (f.is_relation and f.concrete) or f.related_model is None:
                continue
            if not isinstance(f.related_model, type):
                continue  # a generic foreign key
            target = f.related_model._meta.concrete_model
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


class ModelPlan:
    """What the engine needs to know about one model label."""

    def __init__(self, label: str):
        self.label = label
        self.model = None
        self.problem = ""  # why rows of this label fail at once
        self.batchable = False
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            self.problem = f"SyncError: unknown model {label!r} on this server"
            return
        if not is_synced(model):
            self.problem = f"SyncError: {model._meta.label} is not a synced model on this server"
            return
        self.model = model
        self.pk_travels = pk_travels(model)
        self.fields = synced_fields(model)
        self.concrete = model._meta.concrete_fields
        self.fks = [f for f in self.fields if f.many_to_one or f.one_to_one]
        self.m2m = synced_m2m(model)
        self.targets = {f.remote_field.model._meta.concrete_model for f in self.fks + self.m2m}
        self.refers_to = forward_models(model)
        self.batchable = (not model._meta.parents and model not in self.refers_to)
        self.to_pk = model._meta.pk.to_python

    def record_ok(self, record: dict) -> bool:
        if record.get("files"):
            return False  # its files are stored first, per record (attachments.place)
        if self.pk_travels:
            return record.get("pk") is not None
        # A rename is found by its key before the change: per record (find()).
        return type(record.get("natural_key")) is list and "natural_key_before" not in record

    def ident(self, record: dict):
        """The object a record changes, as this engine names it within a window."""
        if self.pk_travels:
            return (self.model, self.to_pk(record["pk"]))
        return (self.model, hashable(record["natural_key"]))

    def __repr__(self):
        return f"<ModelPlan {self.label}>"


class Item:
    """One ledger row in a stage."""

    __slots__ = ("row", "record", "plan", "ident", "pos")

    def __init__(self, row, record, plan, ident, pos):
        self.row, self.record, self.plan, self.ident, self.pos = row, record, plan, ident, pos

    @property
    def delete(self) -> bool:
        return self.record["action"] == "D"


class Stage:
    """Rows applied together (see the module docstring for who may join)."""

    def __init__(self):
        self.items: list[Item] = []
        self.upserts: dict = {}  # plan -> [Item] in arrival order
        self.deletes: dict = {}
        self.deleted_models: set = set()
        self.deleted_idents: set = set()

    def __len__(self):
        return len(self.items)

    def admits(self, item: Item) -> bool:
        if not self.deleted_models:
            return True
        model = item.plan.model
        # An ident names its model: only that model's deletes can match it.
        if model in self.deleted_models and loose(item.ident) in self.deleted_idents:
            return False
        if item.delete:
            return not any(m is not model and m in item.plan.refers_to for m in self.deleted_models)
        return not (self.deleted_models & item.plan.refers_to)

    def add(self, item: Item) -> None:
        self.items.append(item)
        if item.delete:
            self.deletes.setdefault(item.plan, []).append(item)
            self.deleted_models.add(item.plan.model)
            self.deleted_idents.add(loose(item.ident))
        else:
            self.upserts.setdefault(item.plan, []).append(item)


def dependency_order(plans) -> list:
    """Referenced models first; raises _NoBatch on a cycle between these models."""
    from .naturalkeys import _NoBatch

    order: list = []
    pending = list(plans)
    while pending:
        ready = [p for p in pending
                 if not any(q.model in p.refers_to for q in pending if q is not p)]
        if not ready:
            raise _NoBatch("references between these models form a cycle")
        order.extend(ready)
        pending = [p for p in pending if p not in ready]
    return order
