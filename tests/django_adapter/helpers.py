"""Comparisons used by several test modules."""

from django_adapter.serialization import normalize, synced_fields, synced_m2m


def comparable(obj, using):
    """Every synced field of ``obj`` as the value that must be equal across databases
    (references by the target's natural key, since autoincrement pks differ)."""
    model = type(obj)
    out = {}
    for f in synced_fields(model):
        if f.many_to_one or f.one_to_one:
            target = getattr(obj, f.name)
            out[f.name] = None if target is None else target.natural_key()
        else:
            out[f.name] = normalize(f, f.value_from_object(obj))
    for f in synced_m2m(model):
        out[f.name] = sorted(t.natural_key() for t in getattr(obj, f.name).using(using).all())
    return out


def assert_same(model, key, site="default", server="server"):
    a = model._default_manager.db_manager(site).get_by_natural_key(*key)
    b = model._default_manager.db_manager(server).get_by_natural_key(*key)
    assert comparable(a, site) == comparable(b, server)
    return a, b
