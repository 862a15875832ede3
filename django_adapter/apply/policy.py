"""What a site may write: value validation and ownership (issue 10, item 6).

The engine asks its policy about every insert, update and delete it is about to
apply (after the stale rule and reference resolution, before anything is
written); a non-empty answer makes that row ``failed`` with the answer as its
reason, and nothing of it is written.

The default policy, :class:`FieldRules`, checks the values of an insert or update
against the model's fields -- the rules a site's forms enforce that the database
may not: ``null``, ``choices``, ``max_length`` and the field's validators -- and
refuses a record naming a field or M2M set the model does not have (its data
would otherwise be dropped without a word).  ``blank`` is a form rule only, as
in Django, and is not checked.  It does not restrict who may change what: any
trusted site may change or delete any row.  :class:`OwnRowsOnly` is the optional
ownership policy (a site may change or delete only rows it created); set a
policy with ``Applier(..., policy=...)`` / ``apply_rows(..., policy=...)``, or
for every import with ``BUNDLEKIT["APPLY_POLICY"] = "dotted.path.to.Class"``.
"""

from __future__ import annotations

from django.core import validators as dv
from django.core.exceptions import ValidationError

from django_adapter.serialization import synced_fields, synced_m2m


class ApplyPolicy:
    """Allows every change."""

    def refuse(self, model, record: dict, current, row=None) -> str:
        """Why ``record`` (a change of ``model``) must not be applied, or "".

        ``current`` is the server's copy of the object before this change (a model
        instance), or None when the change creates it (or deletes a missing one);
        ``row`` is its ledger row (``sender``: the key that signed it).
        """
        return ""


class FieldRules(ApplyPolicy):
    """Values checked against the model's fields; unknown fields refused."""

    def __init__(self):
        self._rules: dict = {}

    def _for(self, model):
        rules = self._rules.get(model)
        if rules is None:
            fields = {}
            for f in synced_fields(model):
                relation = f.many_to_one or f.one_to_one
                choices = None
                if f.choices and not relation:
                    choices = {value for value, _ in f.flatchoices}
                validators = [] if relation else [(v, _passes(v)) for v in f.validators]
                fields[f.name] = (f, choices, validators, relation)
            m2m = {f.name for f in synced_m2m(model)}
            rules = self._rules[model] = (fields, m2m)
        return rules

    def refuse(self, model, record: dict, current, row=None) -> str:
        if record.get("action") == "D":
            return ""
        fields, m2m = self._for(model)
        given = record.get("fields") or {}
        unknown = [name for name in given if name not in fields]
        unknown += [f"{name} (m2m)" for name in (record.get("m2m") or {}) if name not in m2m]
        if unknown:
            return (f"{model._meta.label} has no field {', '.join(map(repr, unknown))} here: "
                    "not applied, so nothing is dropped")
        for name, value in given.items():
            f, choices, validators, relation = fields[name]
            if value is None:
                if not f.null:
                    return f"{model._meta.label}.{name} may not be empty (null)"
                continue
            if relation:
                continue
            if choices is not None and value not in choices:
                return f"{model._meta.label}.{name}: {value!r} is not one of its choices"
            for validate, passes in validators:
                if passes is not None:
                    try:
                        if passes(value):
                            continue
                    except Exception:  # noqa: BLE001 - the validator itself says what is wrong
                        pass
                try:
                    validate(value)
                except ValidationError as exc:
                    return f"{model._meta.label}.{name}: {'; '.join(exc.messages)}"
                except (TypeError, ValueError) as exc:
                    return f"{model._meta.label}.{name}: {value!r} cannot be checked ({exc})"
        return ""


#: The limit validators Django gives model fields (max_length, the integer ranges
#: of the database), and the comparison each makes: ``compare(clean(value), limit)``
#: true means the value is refused.
_LIMITS = {
    dv.MaxLengthValidator: lambda limit: lambda value: len(value) <= limit,
    dv.MinLengthValidator: lambda limit: lambda value: len(value) >= limit,
    dv.MaxValueValidator: lambda limit: lambda value: value <= limit,
    dv.MinValueValidator: lambda limit: lambda value: value >= limit,
}


def _passes(validator):
    """A cheap test that is true only when ``validator`` would accept the value, or
    None.  Validators run on every field of every record applied; Django's build a
    message's parameters before they compare, which costs more than the rest of the
    check.  A value the test does not pass (or cannot test) goes to the validator
    itself, so the refusals and their messages are Django's."""
    make = _LIMITS.get(type(validator))
    limit = getattr(validator, "limit_value", None)
    if make is None or callable(limit) or not isinstance(limit, int | float):
        return None
    return make(limit)


class OwnRowsOnly(FieldRules):
    """:class:`FieldRules`, and a site may change or delete only the rows it created:
    the object's first applied insert came in a bundle signed by the same key.  An
    object whose creation this ledger does not hold (created on the server, or
    before the ledger) may be changed by any site.  Costs one ledger query per
    object changed (cached for the run)."""

    def __init__(self, using: str = "default"):
        super().__init__()
        self.using = using
        self._creators: dict = {}

    def refuse(self, model, record: dict, current, row=None) -> str:
        why = super().refuse(model, record, current, row)
        if why or current is None or row is None:
            return why
        key = (row.tx_name, row.object_key)
        if key not in self._creators:
            from django_adapter.models import IncomingTransaction, TxStatus

            self._creators[key] = (
                IncomingTransaction.objects.using(self.using)
                .filter(tx_name=row.tx_name, object_key=row.object_key, action="I",
                        status=TxStatus.APPLIED, bundle__isnull=False)
                .order_by("id").values_list("sender", flat=True).first())
        creator = self._creators[key]
        if creator is None or creator == row.sender:
            return ""
        return (f"{model._meta.label} {current.pk} was created by another site's key "
                f"({creator}): only that site may change or delete it")


DEFAULT = FieldRules()


def from_settings(using: str = "default") -> ApplyPolicy:
    """The policy named by ``BUNDLEKIT["APPLY_POLICY"]`` (a dotted path to a class),
    else :data:`DEFAULT`."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = (getattr(settings, "BUNDLEKIT", None) or {}).get("APPLY_POLICY")
    if not path:
        return DEFAULT
    cls = import_string(path)
    try:
        return cls(using=using)
    except TypeError:
        return cls()
