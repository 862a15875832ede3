"""N importer processes on one PostgreSQL database and one inbox, many bundles from
three sites, some twice, in no order: the final state equals a single-process
import, nothing is applied twice, nobody deadlocks.

PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; BUNDLEKIT_PG_HOST/PORT/USER
override).  The test creates its own databases ``bk_rel_<pid>`` and
``bk_rel_<pid>_ref`` and drops them after.  Skipped with a reason when no server
answers, unless CI=true or BUNDLEKIT_TEST_DB=postgres, where it is required.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.reliability.conftest import ROOT, SOAK, seed_for
from tests.reliability.helpers import SETTINGS_HEAD

HOST = os.environ.get("BUNDLEKIT_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("BUNDLEKIT_PG_PORT", "5432"))
USER = os.environ.get("BUNDLEKIT_PG_USER", "postgres")

SETTINGS = SETTINGS_HEAD + """
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(HERE, "site.sqlite3")},
    "server": {"ENGINE": "django.db.backends.postgresql",
               "NAME": os.environ["BUNDLEKIT_REL_SERVER_DB"],
               "HOST": %(host)r, "PORT": %(port)r, "USER": %(user)r},
}
"""


def _answers() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            return True
    except OSError:
        return False


def _required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("BUNDLEKIT_TEST_DB") == "postgres"


@pytest.fixture
def pg_databases():
    if not _answers():
        if _required():
            pytest.fail(f"PostgreSQL is required here but {HOST}:{PORT} does not answer")
        pytest.skip(f"no PostgreSQL server answers on {HOST}:{PORT}")
    import psycopg

    names = [f"bk_rel_{os.getpid()}", f"bk_rel_{os.getpid()}_ref"]
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres", autocommit=True) as c:
        for n in names:
            c.execute(f'DROP DATABASE IF EXISTS "{n}"')
            c.execute(f'CREATE DATABASE "{n}"')
    try:
        yield names
    finally:
        with psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres",
                             autocommit=True) as c:
            for n in names:
                c.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')


def driver(work, cmd, seed, db, background=False):
    env = {**os.environ, "BUNDLEKIT_REL_SERVER_DB": db}
    args = [sys.executable, "-m", "tests.reliability.concurrency_driver", str(work), cmd, str(seed)]
    if background:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_parallel_importers_on_postgresql_equal_one_importer(tmp_path, pg_databases, record):
    db, ref_db = pg_databases
    seed = seed_for("concurrency")
    rounds = 5 if SOAK else 1
    workers = 4
    totals = {"runs": 0, "applied_twice": 0, "lost": 0, "errors": 0, "duplicates": 0}
    for rnd in range(rounds):
        if rnd:  # a fresh pair of databases per round
            import psycopg

            with psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres",
                                 autocommit=True) as c:
                for n in (db, ref_db):
                    c.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')
                    c.execute(f'CREATE DATABASE "{n}"')
        work = tmp_path / f"round-{rnd}"
        ref = tmp_path / f"ref-{rnd}"
        for w in (work, ref):
            w.mkdir()
            (w / "rel_settings.py").write_text(
                textwrap.dedent(SETTINGS) % {"host": HOST, "port": str(PORT), "user": USER})
        prep = driver(work, "prepare", seed + rnd, db)
        # The reference: one process, same bundles, same database engine.
        import shutil

        shutil.copytree(work / "inbox", ref / "inbox")
        shutil.copytree(work / "keys", ref / "keys")
        shutil.copyfile(work / "expected.json", ref / "expected.json")
        procs = [driver(work, "worker", seed + rnd * 100 + i, db, background=True)
                 for i in range(workers)]
        outs = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=600)
            assert p.returncode == 0, stderr[-4000:]
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
        # Reference database: migrate through "prepare"'s settings, then one importer.
        (ref / "site.sqlite3").write_bytes((work / "site.sqlite3").read_bytes())
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='rel_settings';"
                        "django.setup(); from django.core.management import call_command;"
                        "call_command('migrate', database='server', verbosity=0)", str(ref)],
                       cwd=ROOT, env={**os.environ, "BUNDLEKIT_REL_SERVER_DB": ref_db}, check=True)
        driver(ref, "reference", seed + rnd, ref_db)
        got, want = driver(work, "snapshot", 0, db), driver(ref, "snapshot", 0, ref_db)
        errors = [e for o in outs for e in o["errors"]]
        statuses = [s for o in outs for s in o["statuses"]]
        applied_tx = [t for t, s in got["transactions"] if s == "applied"]
        totals["runs"] += 1
        totals["errors"] += len(errors)
        totals["applied_twice"] += len(applied_tx) - len(set(applied_tx))
        totals["duplicates"] += statuses.count("duplicate")
        expected = dict(got["expected"])
        held = {tuple(h) for h in got["households"]}
        totals["lost"] += sum(1 for k, v in expected.items() if (k, v) not in held)
        assert not errors, errors[:5]
        assert got == want
        assert dict(got["households"]) == expected
        assert all(b[1] == "applied" for b in got["bundles"])
        assert len(got["bundles"]) == prep["bundles"]
    record("concurrency", trials=totals["runs"], workers=workers, seed=seed,
           bundles=prep["bundles"], inbox_files=prep["inbox_files"], lost=totals["lost"],
           applied_twice=totals["applied_twice"], deadlocks_or_errors=totals["errors"],
           duplicate_imports_refused=totals["duplicates"])
