"""The apply engine: plan a window of ledger rows, then write it model by model.

``Applier.feed(rows)`` takes a window (the importer hands it a few thousand rows
at a time, as the bundle streams in) and cuts it into stages (``plan.py``).  A
stage is applied as set operations, in one savepoint:

1. the stale rule for every row, from one ledger query per model (``stale.py``);
2. per model, referenced models first: one query to find the objects that exist
   (by primary key, or by natural key through ``naturalkeys.py``), one per
   reference field to resolve what the rows refer to, then the decisions, row
   by row in memory in arrival order, then one INSERT and one UPDATE for the
   objects and a set difference per M2M field (``writes.py``);
3. deletes, referencing models first, one collector delete per model;
4. the ledger rows, each written once with its final status (``ledger.py``).

The decisions are those of applying the rows one by one in arrival order, with
each unresolved reference deferred to the end of the bundle (tests/django_adapter
/apply/reference.py is that row-by-row reading, and the tests check the engine
against it).  A reference counts as resolved only if its target was here before
the stage or was written by an earlier row of the stage; a row referring to a
target that a later row creates is deferred, as it would have been.

A stage that raises anything but a lost connection is rolled back to its
savepoint and redone row by row (``rows.py``), each row in its own savepoint, so
a failing row never undoes the others and the outcome is the per-row one.
:meth:`Applier.finish` then repeats passes over the deferred rows while they make
progress; what still cannot resolve is ``failed`` with the reason.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterable
from contextlib import contextmanager

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from django_adapter import capture, schema
from django_adapter.codec import load
from django_adapter.exceptions import UnresolvedReference
from django_adapter.models import TxStatus
from django_adapter.serialization import travels_by_natural_key, unresolved_message

from . import ledger, stale, writes
from .naturalkeys import hashable, natural_lookup
from .plan import Item, ModelPlan, Stage, dependency_order
from .policy import ApplyPolicy, from_settings
from .rows import _Refused, apply_record

_DEFER = "defer"
#: Reference values that are their own dict key (``hashable`` gives them back).
_SCALARS = frozenset((str, int, uuid.UUID))
_MISSING = object()
_LATER = "an earlier change of this object is unresolved"


#: New objects (net of those freed) between two runs of Python's cyclic collector
#: while applying.  A window keeps 10,000-30,000 objects alive on the clinic
#: schema (bench/clinic): at 10,000 the collector still ran 155 times in a
#: 100,000-record import (0.6-0.7 s, about 5% of it, timed by ``gc.callbacks``),
#: at 50,000 three times (0.02 s).  It also bounds what cyclic garbage a schema
#: that makes some can pile up between two runs.
GC_EVERY = 50_000


@contextmanager
def fewer_collections(every: int = GC_EVERY):
    """Run the cyclic garbage collector less often while a window's objects live.

    At Python's default (every 700 new objects) the collector runs hundreds of
    times a bundle, each time walking the thousands of records, ledger rows and
    model instances a window keeps, all of them alive: a fifth of an import's
    time went there.  Nearly all of them are freed by reference counting anyway
    (a 100,000-record import leaves about ten objects in cycles); the collector
    still runs, less often, so garbage in cycles stays bounded.  The threshold is the process's: a
    nested or concurrent use leaves it as the outer one set it, and it is put
    back on the way out."""
    before = gc.get_threshold()
    if before[0] == 0 or before[0] >= every:  # disabled, or already this relaxed
        yield
        return
    gc.set_threshold(every, *before[1:])
    try:
        yield
    finally:
        if gc.get_threshold()[0] == every:
            gc.set_threshold(*before)


class Applier:
    """Applies ledger rows in order: :meth:`feed` them (the first pass, in as many
    calls as the caller likes, so a bundle can be applied as it streams in), then
    :meth:`finish` (the passes over deferred rows).  Rows may be stored ones (their
    status is updated) or new, unsaved ones from ``store_chunks(insert=False)``
    (inserted once, with their final status, before :meth:`feed` returns)."""

    def __init__(self, using: str, result, *, override_stale: bool = False,
                 policy: ApplyPolicy | None = None):
        self.using, self.result, self.override_stale = using, result, override_stale
        self.policy = policy or from_settings(using)
        self.now = timezone.now()
        self.deferred: list = []
        self.deferred_keys: set = set()
        self.progress = False
        self._plans: dict = {}
        self._bundles: dict = {}
        self._gate = schema.Gate(using)
        self._pos = 0

    # -------------------------------------------------------------- passes

    def feed(self, rows: Iterable) -> None:
        stage = Stage()
        fixed: list = []  # (pos, row, status or _DEFER, reason): decided without the database
        for row in rows:
            pos = self._pos
            self._pos += 1
            if row.object_key in self.deferred_keys:
                fixed.append((pos, row, _DEFER, ""))
                continue
            record, reason = self._record(row)
            if not reason:
                reason = self._schema_reason(row, record)
            if reason:
                fixed.append((pos, row, TxStatus.FAILED, reason))
                continue
            plan = self._plan(record["model"])
            if plan.problem:
                fixed.append((pos, row, TxStatus.FAILED, plan.problem))
                continue
            plan, ident = self._batchable(record)
            if plan is None:
                self._run(stage, fixed)
                stage, fixed = Stage(), []
                self._one(row)
                continue
            item = Item(row, record, plan, ident, pos)
            if not stage.admits(item):
                self._run(stage, fixed)
                stage, fixed = Stage(), []
            stage.add(item)
        self._run(stage, fixed)

    def finish(self) -> None:
        while self.deferred:
            if not self.progress:
                rows, self.deferred = self.deferred, []
                for row in rows:
                    self._decide(row, TxStatus.FAILED, getattr(row, "_bk_reason", "") or _LATER)
                ledger.write(rows, self.using)
                return
            queue = self.deferred
            self.deferred, self.deferred_keys, self.progress = [], set(), False
            self.feed(queue)

    # ------------------------------------------------------------ helpers

    def _record(self, row):
        """(record, "") or (None, why the row fails at once)."""
        if row.status == TxStatus.FAILED and getattr(row, "_bk_invalid", False):
            return None, row.reason
        try:
            record = row._bk_record if getattr(row, "_bk_record", None) is not None else load(
                row.tx, row.format)
        except Exception as exc:  # noqa: BLE001 - an unknown format, undecodable bytes
            return None, f"{type(exc).__name__}: {exc}"
        if not getattr(row, "_bk_checked", False):  # stored rows: checked again
            why = ledger.check_record(record, self._bundle(row))
            if why:
                return None, f"not applied: {why}"
            row._bk_record, row._bk_checked = record, True
        return record, ""

    def _schema_reason(self, row, record) -> str:
        """Why the server's schema cannot take this record yet (``django_adapter.schema``)."""
        bundle = self._bundle(row)
        return self._gate.reason(record, bundle.schema) if bundle is not None else ""

    def _bundle(self, row):
        if row.bundle_id is None:
            return None
        bundle = self._bundles.get(row.bundle_id)
        if bundle is None:
            bundle = self._bundles[row.bundle_id] = row.bundle
        return bundle

    def _plan(self, label: str) -> ModelPlan:
        plan = self._plans.get(label)
        if plan is None:
            plan = self._plans[label] = ModelPlan(label)
        return plan

    def _batchable(self, record):
        """(plan, the object it changes) when ``record`` may be planned with others,
        else (None, None)."""
        try:
            plan = self._plan(record["model"])
            if not plan.batchable or not plan.record_ok(record):
                return None, None
            return plan, plan.ident(record)  # a pk this model cannot read: per record
        except Exception:  # noqa: BLE001 - the per-record path reports what is wrong
            return None, None

    def _decide(self, row, status: str, reason: str) -> None:
        ledger.decide(row, status, reason, self.now)
        self.result.count(status)
        if status == TxStatus.FAILED:
            self.result.messages.append(f"failed: {row.action} {row.tx_name} {row.tx_id}: {reason}")

    def _defer(self, row, reason: str) -> None:
        if reason:
            row._bk_reason = reason
        self.deferred.append(row)
        self.deferred_keys.add(row.object_key)

    # ------------------------------------------------------------ one row

    def _one(self, row) -> None:
        """The per-record path, in its own savepoint; the ledger row is written at once."""
        using = self.using
        record, reason = self._record(row)
        if reason:
            self._decide(row, TxStatus.FAILED, reason)
            self.progress = True
            ledger.write([row], using)
            return
        try:
            with transaction.atomic(using=using), capture.suspended():
                status = apply_record(row, record, using, override_stale=self.override_stale,
                                      policy=self.policy)
        except _Refused as exc:
            status, reason = TxStatus.FAILED, str(exc)
        except UnresolvedReference as exc:
            self._defer(row, str(exc))
            if row.pk is None:
                ledger.write([row], using)  # stored pending, so later batches see its id
            return
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # noqa: BLE001 - any row failure is recorded, not raised
            status, reason = TxStatus.FAILED, f"{type(exc).__name__}: {exc}"
        self._decide(row, status, reason)
        self.progress = True
        ledger.write([row], using)

    # ------------------------------------------------------------ stages

    def _run(self, stage: Stage, fixed: list) -> None:
        if not stage.items and not fixed:
            return
        keys = set(self.deferred_keys)
        new = {id(row) for row in [it.row for it in stage.items] + [f[1] for f in fixed]
               if row.pk is None}
        try:
            with transaction.atomic(using=self.using), capture.suspended():
                decisions, deferred = _Execution(self, stage, fixed).run()
                for _, row, status, reason in decisions:
                    ledger.decide(row, status, reason, self.now)
                ledger.write([row for _, row, _, _ in decisions]
                             + [row for _, row, _ in deferred if row.pk is None], self.using)
        except (OperationalError, InterfaceError):
            raise
        except Exception:  # noqa: BLE001 - redo these rows one by one, each in its savepoint
            self.deferred_keys = keys
            self._redo(stage, fixed, new)
            return
        for _, row, status, reason in sorted(decisions, key=lambda d: d[0]):
            self._decide(row, status, reason)
        if decisions:
            self.progress = True
        for _, row, reason in sorted(deferred, key=lambda d: d[0]):
            self._defer(row, reason)

    def _redo(self, stage: Stage, fixed: list, new: set) -> None:
        for row in [it.row for it in stage.items] + [f[1] for f in fixed]:
            if id(row) in new:  # its insert was rolled back with the stage
                row.pk = row.id = None
                row._state.adding, row._state.db = True, None
                if not getattr(row, "_bk_invalid", False):
                    ledger.decide(row, TxStatus.PENDING, "", None)
        work = sorted([(pos, row, status, reason) for pos, row, status, reason in fixed]
                      + [(it.pos, it.row, None, "") for it in stage.items], key=lambda w: w[0])
        for _, row, status, reason in work:
            if status is None and row.object_key in self.deferred_keys:
                status = _DEFER
            if status == _DEFER:
                self._defer(row, "")
                if row.pk is None:
                    ledger.write([row], self.using)
            elif status is None:
                self._one(row)
            else:
                self._decide(row, status, reason)
                self.progress = True
                ledger.write([row], self.using)


class _Execution:
    """One stage's queries, decisions and writes."""

    def __init__(self, applier: Applier, stage: Stage, fixed: list):
        self.using = applier.using
        self.override = applier.override_stale
        self.policy = applier.policy
        self.deferred_keys = applier.deferred_keys  # updated as rows are deferred
        self.stage = stage
        self.decisions: list = []
        self.deferred: list = []
        for pos, row, status, reason in fixed:
            if status == _DEFER:
                self.deferred.append((pos, row, ""))
            else:
                self.decisions.append((pos, row, status, reason))
        self.created: dict = {}  # model -> [(obj, pos)] inserted by this stage
        self._created_index: dict = {}

    def run(self):
        items = self.stage.items
        self.changes = ({} if self.override or not items
                        else stale.applied_changes([it.row for it in items], self.using))
        for plan in dependency_order(self.stage.upserts):
            self._upserts(plan, self.stage.upserts[plan])
        for plan in reversed(dependency_order(self.stage.deletes)):
            self._deletes(plan, self.stage.deletes[plan])
        return self.decisions, self.deferred

    # ------------------------------------------------------------ decisions

    def _skip(self, it: Item) -> bool:
        """Deferred behind an earlier change of its object, or stale: decided here."""
        row = it.row
        if row.object_key in self.deferred_keys:
            self.deferred.append((it.pos, row, ""))
            return True
        if not self.override and stale.is_stale(
                row, self.changes.get((row.tx_name, row.object_key), ())):
            self.decisions.append((it.pos, row, TxStatus.STALE, ""))
            return True
        return False

    def _done(self, it: Item, status: str) -> None:
        row = it.row
        self.decisions.append((it.pos, row, status, ""))
        self.changes.setdefault((row.tx_name, row.object_key), []).append(stale.change_of(row))

    # ------------------------------------------------------------ finding

    def _existing(self, plan, items: list) -> dict:
        """ident -> the server's copy of the object, for the objects that exist."""
        model = plan.model
        base = model._base_manager.db_manager(self.using)
        if plan.pk_travels:
            pks = {it.ident[1]: it.ident for it in items}
        else:
            by_key = natural_lookup(model, [it.record["natural_key"] for it in items],
                                    self.using, "pk")
            pks = {by_key[it.ident[1]]: it.ident for it in items if it.ident[1] in by_key}
        found = {}
        wanted = list(pks)
        for chunk in ledger.chunks(wanted):
            for obj in base.filter(pk__in=chunk).order_by():
                found[pks[obj.pk]] = obj
        return found

    def _refs(self, field, values: list) -> dict:
        """reference value (hashable) -> local key value, for the values that resolve."""
        target_model = field.remote_field.model
        target_field = field.target_field
        wanted = [v for v in values if v is not None]
        if not wanted:
            return {}
        if travels_by_natural_key(target_field):
            return natural_lookup(target_model, wanted, self.using, target_field.attname)
        to_python = target_field.to_python
        present = set()
        base = target_model._base_manager.using(self.using)
        distinct = list({to_python(v) for v in wanted})
        for chunk in ledger.chunks(distinct):
            present.update(base.filter(**{f"{target_field.attname}__in": chunk}).order_by()
                           .values_list(target_field.attname, flat=True))
        return {hashable(v): v for v in wanted if to_python(v) in present}

    def _created_after(self, field, local, pos: int) -> bool:
        """Whether the target ``local`` was inserted by this stage after ``pos`` (a
        row before it would have found the target missing)."""
        target = field.remote_field.model._meta.concrete_model
        if target not in self.created:
            return False
        attname = field.target_field.attname
        to_python = field.target_field.to_python
        index = self._created_index.get((target, attname))
        if index is None:
            index = self._created_index[(target, attname)] = {
                to_python(getattr(obj, attname)): p for obj, p in self.created[target]}
        made = index.get(to_python(local))
        return made is not None and made > pos

    # ------------------------------------------------------------ upserts

    def _upserts(self, plan, items: list) -> None:
        using = self.using
        existing = self._existing(plan, items)
        refs = {f.name: self._refs(f, [it.record["fields"].get(f.name) for it in items])
                for f in plan.fks}
        m2m_refs = {}
        for f in plan.m2m:
            values = [v for it in items for v in ((it.record.get("m2m") or {}).get(f.name) or ())]
            m2m_refs[f.name] = self._refs(f, values)
        objs: dict = {}  # ident -> [obj, inserted at pos or None]
        m2m: dict = {}  # ident -> {field name: set of target keys}
        for it in items:
            if self._skip(it):
                continue
            values, sets, reason = self._values(plan, it, refs, m2m_refs)
            if reason:
                self.deferred.append((it.pos, it.row, reason))
                self.deferred_keys.add(it.row.object_key)
                continue
            entry = objs.get(it.ident)
            why = self.policy.refuse(plan.model, it.record,
                                     entry[0] if entry else existing.get(it.ident), it.row)
            if why:
                self.decisions.append((it.pos, it.row, TxStatus.FAILED, why))
                continue
            if entry is None:
                obj = existing.get(it.ident)
                if obj is None:
                    # model(), its pk and values set, as one positional call.
                    pk = it.record["pk"] if plan.pk_travels else _MISSING
                    obj = plan.model(*[values[f.attname] if f.attname in values
                                       else pk if f.primary_key and pk is not _MISSING
                                       else f.get_default() for f in plan.concrete])
                    objs[it.ident] = [obj, it.pos]
                    m2m.setdefault(it.ident, {}).update(sets)
                    self._done(it, TxStatus.APPLIED)
                    continue
                entry = objs[it.ident] = [obj, None]
            obj = entry[0]
            for attname, value in values.items():
                setattr(obj, attname, value)
            m2m.setdefault(it.ident, {}).update(sets)
            self._done(it, TxStatus.APPLIED)
        new = [e[0] for e in objs.values() if e[1] is not None]
        writes.insert(plan, new, using)
        writes.update(plan, [e[0] for e in objs.values() if e[1] is None], using)
        self.created.setdefault(plan.model, []).extend(
            (e[0], e[1]) for e in objs.values() if e[1] is not None)
        for f in plan.m2m:
            wanted = {objs[ident][0].pk: sets[f.name] for ident, sets in m2m.items()
                      if f.name in sets}
            writes.set_m2m(f, wanted, using)

    def _values(self, plan, it: Item, refs: dict, m2m_refs: dict):
        """(attname -> value, m2m name -> set of target keys, "") or (.., .., why it
        must wait): what ``serialization.resolve_values`` gives, from the maps."""
        fields = it.record["fields"]
        values = {}
        for f in plan.fields:
            if f.name not in fields:
                continue
            value = fields[f.name]
            if (f.many_to_one or f.one_to_one) and value is not None:
                local = refs[f.name].get(
                    value if type(value) in _SCALARS else hashable(value), _MISSING)
                if local is _MISSING or self._created_after(f, local, it.pos):
                    return None, None, unresolved_message(f, value)
                value = local
            values[f.attname] = value
        sets = {}
        given = it.record.get("m2m") or {}
        for f in plan.m2m:
            if f.name not in given:
                continue
            to_python = f.target_field.to_python
            keys = set()
            for value in given[f.name]:
                local = m2m_refs[f.name].get(
                    value if type(value) in _SCALARS else hashable(value), _MISSING)
                if local is _MISSING or self._created_after(f, local, it.pos):
                    return None, None, unresolved_message(f, value)
                keys.add(to_python(local))
            sets[f.name] = keys
        return values, sets, ""

    # ------------------------------------------------------------ deletes

    def _deletes(self, plan, items: list) -> None:
        existing = self._existing(plan, items)
        pks = []
        for it in items:
            if self._skip(it):
                continue
            obj = existing.get(it.ident)
            why = self.policy.refuse(plan.model, it.record, obj, it.row)
            if why:
                self.decisions.append((it.pos, it.row, TxStatus.FAILED, why))
                continue
            if obj is None:
                self._done(it, TxStatus.DELETED_MISSING)
            else:
                pks.append(obj.pk)
                self._done(it, TxStatus.APPLIED)
        writes.delete(plan, pks, self.using)
