"""Settings for the in-repo test project.

One backend per pytest run, chosen by ``BUNDLEKIT_TEST_DB`` (sqlite, postgres,
mysql); ``make test`` runs the Django suite once per backend. Two aliases,
``default`` (a field laptop, edc-sync's "client") and ``server``, live on the same
backend so the edc-sync two-alias calls can be tested as users write them.

PostgreSQL and MariaDB are optional on a developer machine (their tests skip with
a reason) and required in CI (``CI=true``): see tests/conftest.py.
"""

import json
import os
import tempfile

BACKEND = os.environ.get("BUNDLEKIT_TEST_DB", "sqlite")
# Several test runs may share one database server: keep their test databases apart.
RUN_ID = os.environ.get("BUNDLEKIT_TEST_RUN_ID", str(os.getpid()))

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_adapter",
    "tests.test_app",
    "tests.test_files",
]


def _database(alias: str) -> dict:
    if BACKEND == "postgres":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "HOST": os.environ.get("BUNDLEKIT_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BUNDLEKIT_PG_PORT", "5432"),
            "USER": os.environ.get("BUNDLEKIT_PG_USER", "postgres"),
            "TEST": {"NAME": f"test_bk_{alias}_{RUN_ID}"},
        }
    if BACKEND == "mysql":
        import pymysql

        pymysql.install_as_MySQLdb()
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "test",
            "HOST": os.environ.get("BUNDLEKIT_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BUNDLEKIT_MYSQL_PORT", "3306"),
            "USER": os.environ.get("BUNDLEKIT_MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("BUNDLEKIT_MYSQL_PASSWORD", ""),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"NAME": f"test_bk_{alias}_{RUN_ID}", "CHARSET": "utf8mb4"},
        }
    if BACKEND == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            # Never opened by the suite (tests use TEST's), but Django may connect to
            # it while it sets up: in the temporary folder, not the working copy.
            "NAME": os.path.join(tempfile.gettempdir(), f"bk_{alias}_{RUN_ID}.sqlite3"),
            # A file, not memory: the crash test imports from a second process.
            "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"test_bk_{alias}_{RUN_ID}.sqlite3")},
        }
    raise RuntimeError(f"BUNDLEKIT_TEST_DB={BACKEND!r}: expected sqlite, postgres or mysql")


DATABASES = {alias: _database(alias) for alias in ("default", "server")}

# A child process started by a test (the crash test) works on the parent's test
# databases: the parent passes their names here.
for _alias, _name in json.loads(os.environ.get("BUNDLEKIT_TEST_DB_NAMES", "{}")).items():
    DATABASES[_alias]["NAME"] = _name

# The admin pages of django_adapter are part of what is tested.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "tests.test_project.urls"
# The live server of the browser tests serves STATIC_URL (nothing is there: the
# dashboard serves its own stylesheet); Django needs it to be set.
STATIC_URL = "/static/"
