"""Django settings for benchmark worker processes.

One database per process, named by ``BK_BENCH_DB``:

    sqlite:<file>          a SQLite file
    postgres:<database>    a PostgreSQL database (host, port and user from
                           BK_BENCH_PG_HOST, BK_BENCH_PG_PORT, BK_BENCH_PG_USER)
    mysql:<database>       a MariaDB/MySQL database through PyMySQL (host, port,
                           user and password from BK_BENCH_MYSQL_HOST, _PORT,
                           _USER, _PASSWORD)

The harness (bench/run.py) creates and drops every database it names here.
"""

import json
import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False  # with DEBUG, Django keeps every query in memory
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django_adapter",
    "bench.benchapp",
    "bench.clinic",
]
# The field workflow's settings for whole-process commands (`manage.py bundle import`),
# as JSON: the harness names this run's keys here.  Without them (the capturing
# site), edc-sync's BUNDLEKIT_SITE names the site on captured changes; with them,
# BUNDLEKIT["SITE"] does, and setting both differently is a check error (E103).
if os.environ.get("BK_BENCH_BUNDLEKIT"):
    BUNDLEKIT = json.loads(os.environ["BK_BENCH_BUNDLEKIT"])
else:
    BUNDLEKIT_SITE = os.environ.get("BK_BENCH_SITE", "bench-site")

_DB = os.environ.get("BK_BENCH_DB", "sqlite::memory:")


def _database(url: str) -> dict:
    kind, _, name = url.partition(":")
    if kind == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    if kind == "postgres":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "HOST": os.environ.get("BK_BENCH_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BK_BENCH_PG_PORT", "5432"),
            "USER": os.environ.get("BK_BENCH_PG_USER", "postgres"),
        }
    if kind == "mysql":
        import pymysql

        pymysql.install_as_MySQLdb()
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "HOST": os.environ.get("BK_BENCH_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BK_BENCH_MYSQL_PORT", "3306"),
            "USER": os.environ.get("BK_BENCH_MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("BK_BENCH_MYSQL_PASSWORD", ""),
            "OPTIONS": {"charset": "utf8mb4"},
        }
    raise RuntimeError(
        f"bench database {url!r}: expected sqlite:<file>, postgres:<database> or "
        "mysql:<database>")


DATABASES = {"default": _database(_DB)}
# A second database, for the one task that reads another's rows (worker.py's
# ``floor``: the rows an import left, written again apart).
if os.environ.get("BK_BENCH_SOURCE"):
    DATABASES["source"] = _database(os.environ["BK_BENCH_SOURCE"])
