"""The stale rule: a late change never rolls an object back.

One function decides it (:func:`is_stale`), for the per-record path and the
batched engine alike; :func:`applied_changes` gathers what it looks at.

A change is stale when another change of the same object (same model, same
``object_key``) with a later timestamp was already applied (``applied`` or
``deleted-missing``).  Equal timestamps apply in arrival order.  Changes that
came in bundles along the same chain are ordered by that chain (sequence, then
position), not by their clock: a laptop whose clock was set back (a flat
battery) must still have its newest change applied.  Rows copied without a
chain (edc-sync's ``copy_to_incoming_transaction``) have only their timestamps.

A delete stays a delete: an update is stale when another chain's delete of the
object was applied and no insert or update was applied after it (later in
time), whatever the update's timestamp.  The site that sent it had not seen the
delete; ``bundle resolve --take-site`` brings the object back if that is right.

The timestamps compared are the ledger's: a record's own, but never later than
the arrival of its bundle (``ledger.ledger_row``), so a clock that runs ahead
cannot win for ever (docs/WORKFLOW.md, "A laptop's clock is wrong").
"""

from __future__ import annotations

from django.db import connections

from django_adapter.models import IncomingTransaction, TxStatus

#: Statuses that count as "this change reached the object".
COUNTED = (TxStatus.APPLIED, TxStatus.DELETED_MISSING)


def chain_of(row) -> str:
    """Whose chain a ledger row came along: the fingerprint of the key that signed
    its bundle ("" for rows that came without a bundle)."""
    return row.sender


def change_of(row) -> tuple:
    """What :func:`is_stale` needs to know of an applied change."""
    return (row.timestamp, chain_of(row), row.bundle_id is not None, row.action)


def is_stale(row, changes) -> bool:
    """Whether ``row`` is older than one of ``changes`` (the applied changes of its
    object other than itself, as :func:`change_of` tuples), or an update of an
    object another chain deleted (see the module docstring)."""
    for ts, chain, bundled, _action in changes:
        if ts > row.timestamp and not (
            row.bundle_id is not None and bundled and chain == chain_of(row)
        ):
            return True
    if row.action == "U":
        for ts, chain, bundled, action in changes:
            if action == "D" and not (
                row.bundle_id is not None and bundled and chain == chain_of(row)
            ) and not any(a != "D" and t > ts for t, _, _, a in changes):
                return True
    return False


def applied_changes(rows: list, using: str) -> dict:
    """(tx_name, object_key) -> [change_of(r)] for the applied ledger rows of those
    objects, other than ``rows`` themselves: a few queries for a whole window."""
    own = {row.pk for row in rows if row.pk is not None}
    by_name: dict = {}
    for row in rows:
        by_name.setdefault(row.tx_name, set()).add(row.object_key)
    changes: dict = {}
    query = _Query(connections[using])
    for name, keys in sorted(by_name.items()):
        keys = sorted(keys)
        for i in range(0, len(keys), query.size):
            for pk, key, ts, sender, bundle_id, status, action in query(name, keys[i:i + query.size]):
                if status in COUNTED and pk not in own:
                    changes.setdefault((name, key), []).append(
                        (ts, sender, bundle_id is not None, action))
    return changes


class _Query:
    """The ledger rows of one model name and a list of object keys.

    One model name per query, no ORDER BY, the status checked by the caller rather
    than in SQL: so that every database searches the (tx_name, object_key) index
    for exactly these objects, even on a ledger that grows inside this
    transaction (no statistics yet).  The SQL is Django's own, compiled once per
    connection for a full list (a shorter list repeats its last key, which
    changes nothing in an IN list), and its results go through Django's
    converters: a window asks it hundreds of times, and compiling the query each
    time cost more than running it.

    PostgreSQL plans a long IN list on that young ledger as a scan of every row of
    the model; there the keys go as one array, each looked up on its own
    (``unnest`` and ``LATERAL ... OFFSET 0``, as ``ledger._stored_by_id`` does):
    one query for 500 keys instead of 25 queries of 20."""

    COLUMNS = ("pk", "object_key", "timestamp", "sender", "bundle_id", "status", "action")

    def __init__(self, connection):
        self.connection = connection
        self.size = 500
        self.probes = connection.vendor == "postgresql"
        cache = connection.__dict__.setdefault("_bk_stale_query", {})
        self.compiled = cache.get(self.probes)
        if self.compiled is None:
            self.compiled = cache[self.probes] = self._compile()

    def _queryset(self, name, keys):
        return (IncomingTransaction.objects.using(self.connection.alias)
                .filter(tx_name=name, object_key__in=keys).order_by()
                .values_list(*self.COLUMNS))

    def _compile(self):
        if self.probes:
            return self._compile_probes()
        probe = [f"k{i}" for i in range(self.size)]
        compiler = self._queryset("n", probe).query.get_compiler(self.connection.alias)
        sql, params = compiler.as_sql()
        if list(params) == ["n", *probe]:
            name_first = True
        elif list(params) == [*probe, "n"]:
            name_first = False
        else:  # not a shape this knows: the ORM each time
            return False
        converters = compiler.get_converters([s[0] for s in compiler.select])
        return sql, name_first, compiler, converters

    def _compile_probes(self):
        """The PostgreSQL form: the same columns, converted the same way."""
        compiler = self._queryset("n", ["k"]).query.get_compiler(self.connection.alias)
        compiler.as_sql()  # sets up compiler.select for the converters
        converters = compiler.get_converters([s[0] for s in compiler.select])
        qn = self.connection.ops.quote_name
        opts = IncomingTransaction._meta
        fields = [opts.pk if c == "pk" else opts.get_field(c) for c in self.COLUMNS]
        columns = ", ".join(f"i.{qn(f.column)}" for f in fields)
        inner = ", ".join(f"t.{qn(f.column)}" for f in fields)
        sql = (f"SELECT {inner} FROM unnest(%s::text[]) AS k(key) CROSS JOIN LATERAL "
               f"(SELECT {columns} FROM {qn(IncomingTransaction._meta.db_table)} i "
               f"WHERE i.{qn('tx_name')} = %s AND i.{qn('object_key')} = k.key OFFSET 0) t")
        return sql, None, compiler, converters

    def __call__(self, name: str, keys: list):
        if not self.compiled:
            return list(self._queryset(name, keys))
        sql, name_first, compiler, converters = self.compiled
        if name_first is None:  # PostgreSQL: one array of keys
            params = [list(keys), name]
        else:
            params = [*keys, *[keys[-1]] * (self.size - len(keys))]
            params = [name, *params] if name_first else [*params, name]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return list(compiler.apply_converters(rows, converters)) if converters else rows


def newer_applied(row, using: str) -> bool:
    """:func:`is_stale` for one row, asking the database."""
    return is_stale(row, applied_changes([row], using).get((row.tx_name, row.object_key), ()))
