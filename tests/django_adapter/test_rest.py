"""The REST transport against a real server process on 127.0.0.1.

One WSGI server (Django's threaded runserver classes) in a subprocess per
module, with its own settings module, SQLite database and folders under a
temporary directory; this test process plays the field laptop (its own test
database, ``export_pending`` into an outbox) and the client
(``bundlekit.transport`` in-process, and ``bundle push`` as a user runs it).
SQLite pass only: nothing here depends on the database backend, and the
in-process endpoint tests in test_rest_views.py run on every backend.
"""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.test import override_settings

from bundlekit import transport
from bundlekit.keys import Identity, pub_file_text, write_keypair
from bundlekit.writer import ChainLink, seal
from django_adapter.conf import Config
from django_adapter.exporter import export_pending
from django_adapter.models import ExportedBundle
from django_adapter.receipts import apply_receipt
from tests.test_app import models as m

pytestmark = [pytest.mark.sqlite_only, pytest.mark.django_db(databases=["default"])]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-field-token"
#: Bound to the key of ``server.bound`` (one laptop): acts for that site only.
SITE_TOKEN = "laptop-zero-only"
#: A token of its own, so the quota test counts only its uploads.
QUOTA_TOKEN = "quota-tester"
MAX_UPLOAD = 1024 * 1024
MAX_UNFINISHED = 3
MAX_UNFINISHED_BYTES = MAX_UPLOAD + 10_000
HOST = "127.0.0.1"

SERVER = """
import os, sys
sys.path[:0] = [sys.argv[2], sys.argv[3]]
os.environ["DJANGO_SETTINGS_MODULE"] = sys.argv[1]
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
server = ThreadedWSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
server.daemon_threads = True
server.set_app(get_wsgi_application())
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture(autouse=True)
def instant_backoff(monkeypatch):
    monkeypatch.setattr(transport, "_sleep", lambda seconds: None)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server: keys, folders, settings module, migrated DB, a listening process."""
    base = tmp_path_factory.mktemp("rest")
    keys = base / "keys"
    trusted = base / "trusted"
    for folder in (keys, trusted, base / "inbox", base / "outbox", base / "receipts"):
        folder.mkdir()
    central = Identity.generate("central")
    key_path, _ = write_keypair(central, keys)
    # Settings are read at start-up: the field laptops of all tests are known now.
    laptops = [Identity.generate(f"site-{i:02d}") for i in range(16)]
    pubs = []
    for ident in laptops:
        pub = trusted / f"{ident.fingerprint}.pub"
        pub.write_text(pub_file_text(ident.public))
        pubs.append(str(pub))
    config = {
        "SITE": "central",
        "IDENTITY": str(key_path),
        "TRUSTED": pubs,
        "INBOX": str(base / "inbox"),
        "OUTBOX": str(base / "outbox"),
        "RECEIPTS_OUT": str(base / "receipts"),
        "DATABASE": "default",
        "REST": {
            "TOKENS": [TOKEN, QUOTA_TOKEN, {"TOKEN": SITE_TOKEN, "KEY": pubs[0]}],
            "IMPORT_ON_UPLOAD": True,
            "MAX_UPLOAD_BYTES": MAX_UPLOAD,
            "UPLOAD_DIR": str(base / "uploads"),
            "MAX_UNFINISHED_UPLOADS": MAX_UNFINISHED,
            "MAX_UNFINISHED_BYTES": MAX_UNFINISHED_BYTES,
        },
    }
    (base / "rest_settings.py").write_text(
        textwrap.dedent(
            f"""
            from tests.test_project.settings import *  # noqa
            DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3",
                                       "NAME": {str(base / "server.sqlite3")!r}}}}}
            ROOT_URLCONF = "rest_urls"
            ALLOWED_HOSTS = ["127.0.0.1"]
            BUNDLEKIT = {config!r}
            """
        )
    )
    (base / "rest_urls.py").write_text(
        'from django.urls import include, path\n'
        'urlpatterns = [path("bundles/", include("django_adapter.urls"))]\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("BUNDLEKIT_TEST_DB_NAMES", "DJANGO_SETTINGS_MODULE")}
    env["BUNDLEKIT_TEST_DB"] = "sqlite"
    log = open(base / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, "rest_settings", str(base), str(ROOT)],
        cwd=base, env=env, stdout=subprocess.PIPE, stderr=log,
    )
    try:
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            pytest.fail("server did not start:\n" + (base / "server.log").read_text())
        port = int(line)

        class Server:
            url = f"http://{HOST}:{port}/bundles/"
            root = base
            identity = central
            db = base / "server.sqlite3"

            bound = laptops[0]  # the site SITE_TOKEN acts for
            pool = laptops[1:]

            @staticmethod
            def count(table):
                with sqlite3.connect(base / "server.sqlite3") as db:
                    return db.execute(f"select count(*) from {table}").fetchone()[0]

        yield Server
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        log.close()


@pytest.fixture
def site(server):
    """A field laptop: its own key (trusted by the server) and an outbox."""
    return server.pool.pop()


def export(tmp_path, site, server, name="outbox"):
    return [
        tmp_path / name / b.file_name
        for b in export_pending(tmp_path / name, identity=site, recipients=[server.identity.public])
    ]


def households(n, prefix):
    """``n`` households entered on the laptop of site ``prefix`` (its records name
    that site as producer, as the key that signs them does)."""
    with override_settings(BUNDLEKIT_SITE=prefix):
        for i in range(n):
            m.Household.objects.create(code=f"{prefix}-{i:04d}", village="Molepolole")


def uploaded_sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def settled_state(server, bundle):
    """The upload's state once the server has finished the interrupted request."""
    url = server.url + f"uploads/{uploaded_sha(bundle)}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    last = None
    for _ in range(100):
        state = httpx.get(url, headers=auth).json()
        if state == last:
            return state
        last = state
        time.sleep(0.1)
    raise AssertionError(f"the upload never settled: {state}")


# ----------------------------------------------------------------------------- tests


def test_push_imports_and_answers_with_the_report(tmp_path, server, site):
    households(25, site.public.site)
    (bundle,) = export(tmp_path, site, server)
    (result,) = transport.push(server.url, [bundle], token=TOKEN)
    assert result.ok and result.status == "imported" and result.http_status == 201
    report = result.answer["report"]
    assert (report["status"], report["applied"], report["failed"]) == ("applied", 25, 0)
    assert report["file"] == bundle.name and report["seq"] == 1
    with sqlite3.connect(server.db) as db:
        codes = {c for (c,) in db.execute("select code from test_app_household")}
    assert {f"{site.public.site}-{i:04d}" for i in range(25)} <= codes
    assert (server.root / "inbox" / "done" / bundle.name).read_bytes() == bundle.read_bytes()
    # As after a watcher pass, the sender's receipt is waiting to be fetched.
    (receipt,) = result.answer["receipts"]
    assert f"-{site.public.site}-" in receipt
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert receipt in [r["name"] for r in httpx.get(server.url + "receipts/", headers=auth).json()["receipts"]]

    # The same bundle again: the server holds it, nothing is sent again.
    (again,) = transport.push(server.url, [bundle], token=TOKEN)
    assert again.ok and again.status == "already held" and again.http_status == 200
    assert again.bytes_sent == 0


def test_a_held_bundle_from_another_route_is_already_held(tmp_path, server, site):
    households(3, site.public.site)
    (bundle,) = export(tmp_path, site, server)
    assert transport.push(server.url, [bundle], token=TOKEN)[0].status == "imported"
    # The upload record is forgotten (swept), the bundle is still held by the DB.
    copy = tmp_path / "copy" / bundle.name
    copy.parent.mkdir()
    copy.write_bytes(bundle.read_bytes())
    import shutil

    shutil.rmtree(server.root / "uploads" / uploaded_sha(bundle))
    (again,) = transport.push(server.url, [copy], token=TOKEN)
    assert (again.status, again.http_status) == ("already held", 200)
    assert again.answer["report"]["status"] == "duplicate"


def test_dropped_connection_mid_upload_resumes_from_the_server_offset(tmp_path, server, site, field_data):
    field_data["binary"] = os.urandom(300_000)  # incompressible: the bundle is ~300 KB
    with override_settings(BUNDLEKIT_SITE=site.public.site):
        m.AllFields.objects.create(**field_data)
    (bundle,) = export(tmp_path, site, server)
    size = bundle.stat().st_size
    chunk = 64 * 1024
    assert size > 4 * chunk

    sent = 0

    def drop_once(n):  # the link fails half-way through the third chunk
        nonlocal sent
        sent += n
        if sent >= 2 * chunk + chunk // 2 and not drop_once.done:
            drop_once.done = True
            raise httpx.WriteError("link dropped")

    drop_once.done = False
    (result,) = transport.push(server.url, [bundle], token=TOKEN, chunk_size=chunk, progress=drop_once)
    assert result.status == "imported", result
    upload = result.answer["upload"]
    # Every byte reached the server exactly once: the resumed request began at
    # the server's offset, after the bytes of the interrupted one.
    assert upload["received"] == upload["length"] == size
    # (The client may have handed a few bytes more to the socket than the
    # server kept: those in flight when the link dropped.)
    assert result.bytes_sent >= size and result.attempts > 1 + size // chunk
    assert result.answer["report"]["applied"] == 1


def test_an_interrupted_push_resumes_in_the_next_run(tmp_path, server, site, field_data):
    field_data["binary"] = os.urandom(300_000)
    m.AllFields.objects.create(**field_data)
    (bundle,) = export(tmp_path, site, server)
    size = bundle.stat().st_size
    chunk = 64 * 1024

    class PowerCut(Exception):
        pass

    sent = 0

    def cut(n):
        nonlocal sent
        sent += n
        if sent >= chunk + 1000:
            raise PowerCut

    with pytest.raises(PowerCut):
        transport.push(server.url, [bundle], token=TOKEN, chunk_size=chunk, progress=cut)
    state = settled_state(server, bundle)
    assert chunk <= state["offset"] < size and not state["complete"]

    (result,) = transport.push(server.url, [bundle], token=TOKEN, chunk_size=chunk)
    assert result.status == "imported"
    assert result.resumed_from == state["offset"]
    assert result.bytes_sent == size - state["offset"]
    assert result.answer["upload"]["received"] == size


def test_unsigned_garbage_and_foreign_uploads_are_refused_and_not_kept(tmp_path, server, site):
    garbage = tmp_path / "garbage.bundle"
    garbage.write_bytes(os.urandom(5000))
    foreign_key = Identity.generate("stranger")  # signs correctly, but is not trusted
    (sealed,) = seal([{"id": 1, "model": "x"}], identity=foreign_key, after=ChainLink(0, None),
                     recipients=[server.identity.public], out_dir=tmp_path)
    foreign = Path(sealed.path)
    (mine,) = seal([{"id": 1, "model": "x"}], identity=site, after=ChainLink(0, None),
                   recipients=[server.identity.public], out_dir=tmp_path)
    tampered = tmp_path / "tampered.bundle"  # a trusted sender's bundle, one bit flipped
    data = bytearray(Path(mine.path).read_bytes())
    data[100] ^= 1
    tampered.write_bytes(bytes(data))

    results = transport.push(server.url, [garbage, foreign, tampered], token=TOKEN)
    codes = [(r.status, r.http_status, r.error) for r in results]
    assert codes == [
        ("failed", 422, "not-a-bundle"),
        ("failed", 403, "unknown-sender"),
        ("failed", 422, "corrupt"),
    ]
    assert "not one of the trusted senders" in results[1].reason
    for path in (garbage, foreign, tampered):
        leftovers = list((server.root / "uploads" / uploaded_sha(path)).glob("*"))
        assert [p.name for p in leftovers if p.name != ".lock"] == []
    assert not any(p.name.startswith("stranger") for p in (server.root / "inbox").rglob("*"))


def test_an_oversized_upload_gets_413(tmp_path, server):
    big = tmp_path / "big.bundle"
    big.write_bytes(b"\0" * (MAX_UPLOAD + 1))
    (result,) = transport.push(server.url, [big], token=TOKEN)
    assert (result.status, result.http_status, result.error) == ("failed", 413, "too-large")
    assert result.bytes_sent == 0
    assert not (server.root / "uploads" / uploaded_sha(big)).exists()


def test_a_fork_gets_409(tmp_path, server, site):
    households(2, site.public.site)
    (first,) = export(tmp_path, site, server)
    assert transport.push(server.url, [first], token=TOKEN)[0].status == "imported"
    # Same sender, same seq 1, other contents: a restored laptop re-sealing.
    (tmp_path / "restored").mkdir()
    (sealed,) = seal([{"id": str(uuid.uuid4()), "model": "test_app.household"}], identity=site,
                     recipients=[server.identity.public], out_dir=tmp_path / "restored",
                     after=ChainLink(seq=0, digest=None))
    assert sealed.manifest.seq == 1
    fork = Path(sealed.path)
    (result,) = transport.push(server.url, [fork], token=TOKEN)
    assert (result.status, result.http_status, result.error) == ("failed", 409, "fork")
    assert "fork" in result.reason
    assert (server.root / "inbox" / "rejected" / fork.name).exists()
    # Asking again gets the same conflict, not "already held".
    assert transport.push(server.url, [fork], token=TOKEN)[0].http_status == 409


def test_token_required(tmp_path, server, site):
    households(1, site.public.site)
    (bundle,) = export(tmp_path, site, server)
    for call in (lambda: httpx.get(server.url + "outbox/"),
                 lambda: httpx.get(server.url + "outbox/", headers={"Authorization": "Bearer nope"}),
                 lambda: httpx.get(server.url + "receipts/")):
        response = call()
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    (result,) = transport.push(server.url, [bundle])
    assert (result.http_status, result.error) == (401, "unauthorized")
    assert not (server.root / "uploads" / uploaded_sha(bundle)).exists()


def test_pull_from_a_laptop_outbox(tmp_path, server, site):
    households(4, site.public.site)
    bundles = export(tmp_path, site, server, name="laptop-outbox")
    for b in bundles:  # the laptop serves its outbox (here: the test server's OUTBOX)
        (server.root / "outbox" / b.name).write_bytes(b.read_bytes())
    (server.root / "outbox" / ".x.bundle.partial").write_bytes(b"half")
    stick = tmp_path / "middleman"
    stick.mkdir()
    paths = transport.pull(server.url, stick, token=TOKEN)
    names = {b.name for b in bundles}
    assert names <= {p.name for p in paths}
    for b in bundles:
        assert (stick / b.name).read_bytes() == b.read_bytes()
    assert not [p for p in stick.iterdir() if p.name.startswith(".")]
    # Again: everything is already there with the same SHA-256; nothing re-downloaded.
    results = transport.pull_each(server.url, stick, token=TOKEN)
    assert {r.status for r in results if r.name in names} == {"present"}


def test_pull_refuses_a_file_that_fails_verification(tmp_path, server):
    bad = server.root / "outbox" / "bogus-00000001-0123abcd.bundle"
    bad.write_bytes(b"bundlekit.org/v1\n" + os.urandom(300))
    try:
        stick = tmp_path / "stick"
        stick.mkdir()
        results = {r.name: r for r in transport.pull_each(server.url, stick, token=TOKEN)}
        assert results[bad.name].status == "failed"
        assert not (stick / bad.name).exists()
        assert not list(stick.glob(".*"))
        with pytest.raises(transport.TransferError):
            transport.pull(server.url, stick, token=TOKEN)
    finally:
        bad.unlink()


def test_field_story_rest_hop_with_bundle_push(tmp_path, server, site):
    """Laptop exports, `bundle push` carries the bundle to the server (instead of
    a stick), the server imports it; pushing again is harmless."""
    households(10, site.public.site)
    (bundle,) = export(tmp_path, site, server)
    env = dict(os.environ, BUNDLEKIT_TOKEN=TOKEN, BUNDLEKIT_NO_PROGRESS="1")
    cmd = [sys.executable, "-m", "bundlekit", "push", server.url, str(bundle.parent), "--json"]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    (answer,) = json.loads(run.stdout)
    assert answer["status"] == "imported" and answer["answer"]["report"]["applied"] == 10
    with sqlite3.connect(server.db) as db:
        got = db.execute("select count(*) from test_app_household where code like ?",
                         (f"{site.public.site}-%",)).fetchone()[0]
    assert got == 10
    again = subprocess.run(cmd[:-1], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already held" in again.stdout
    # The receipt comes back over the same link, and the laptop applies it.
    back = tmp_path / "receipts-back"
    back.mkdir()
    pulled = subprocess.run(
        [sys.executable, "-m", "bundlekit", "pull", server.url, "--receipts", "--site",
         site.public.site, "--out", str(back)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    (receipt,) = back.iterdir()
    (tmp_path / "laptop-keys").mkdir()
    key_path, _ = write_keypair(site, tmp_path / "laptop-keys")
    server_pub = tmp_path / "laptop-keys" / "central.pub"
    server_pub.write_text(pub_file_text(server.identity.public))
    laptop = Config(site=site.public.site, identity_path=Path(key_path),
                    receipts_from_paths=(server_pub,))
    assert apply_receipt(receipt, config=laptop).acknowledged == 1
    assert ExportedBundle.objects.get(file_name=bundle.name).acknowledged
    # Without the token: one clear line and a non-zero exit.
    env.pop("BUNDLEKIT_TOKEN")
    denied = subprocess.run(cmd[:-1], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert denied.returncode == 1
    assert "token" in denied.stdout + denied.stderr


def test_receipts_and_names_that_are_not_ours(tmp_path, server):
    name = "receipt-central-site-a-20240501t101010z-0123abcd.receipt"
    (server.root / "receipts" / name).write_bytes(b"bundlekit.org/v2/receipt\n...")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    listing = httpx.get(server.url + "receipts/", headers=auth).json()["receipts"]
    assert name in [r["name"] for r in listing]
    got = httpx.get(server.url + f"receipts/{name}", headers=auth)
    assert got.status_code == 200 and got.content.startswith(b"bundlekit.org/v2/receipt")
    assert got.headers["X-Content-SHA256"] == hashlib.sha256(got.content).hexdigest()
    for bad in ("outbox/..%2Fserver.sqlite3", "outbox/%2E%2E%2Frest_settings.py",
                "outbox/server.log", "receipts/..%2F..%2Frest_urls.py", "uploads/..%2Fx"):
        response = httpx.get(server.url + bad, headers=auth)
        assert response.status_code == 404, bad
        assert response.json()["error"] in ("bad-name", "bad-upload-id"), bad


# ------------------------------------------------------------- attacks (issue 10)


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.attack
def test_asking_about_an_upload_never_creates_anything(server):
    for i in range(3):
        uid = hashlib.sha256(f"never uploaded {i}".encode()).hexdigest()
        url = server.url + f"uploads/{uid}"
        got = httpx.get(url, headers=auth())
        assert (got.status_code, got.json()["error"]) == (404, "no-such-upload")
        assert httpx.head(url, headers=auth()).status_code == 404
        assert httpx.delete(url, headers=auth()).status_code == 204
        assert not (server.root / "uploads" / uid).exists()


@pytest.mark.attack
def test_unfinished_uploads_have_a_quota_per_token(tmp_path, server, site):
    def start(n: int, size: int, token=QUOTA_TOKEN):
        uid = hashlib.sha256(f"quota {n}".encode()).hexdigest()
        return uid, httpx.put(server.url + f"uploads/{uid}", content=b"",
                              headers={**auth(token), "Content-Range": f"bytes */{size}"})

    started = []
    for n in range(MAX_UNFINISHED):
        uid, r = start(n, 1000)
        assert r.status_code == 202, r.text
        started.append(uid)
    uid, r = start(99, 1000)
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert (body["error"], body["unfinished_uploads"], body["unfinished_bytes"]) == (
        "upload-quota", MAX_UNFINISHED, MAX_UNFINISHED * 1000)
    assert not (server.root / "uploads" / uid).exists()
    # Another token is not held back by this one's uploads.
    assert start(99, 1000, token=TOKEN)[1].status_code == 202
    httpx.delete(server.url + f"uploads/{start(99, 1000, token=TOKEN)[0]}", headers=auth())
    # A push against the quota fails at once with the reason (a refusal: no retries).
    households(2, site.public.site)
    (bundle,) = export(tmp_path, site, server)
    (result,) = transport.push(server.url, [bundle], token=QUOTA_TOKEN)
    assert (result.status, result.http_status, result.error, result.attempts) == (
        "failed", 413, "upload-quota", 1)
    # Bytes count too: finishing or deleting uploads frees the quota.
    for uid in started:
        assert httpx.delete(server.url + f"uploads/{uid}", headers=auth()).status_code == 204
    assert start(200, MAX_UPLOAD)[1].status_code == 202
    assert start(201, MAX_UNFINISHED_BYTES - MAX_UPLOAD)[1].status_code == 202
    assert start(202, 1)[1].json()["error"] == "upload-quota"
    for n in (200, 201):
        httpx.delete(server.url + f"uploads/{start(n, 1)[0]}", headers=auth())
    (result,) = transport.push(server.url, [bundle], token=QUOTA_TOKEN)
    assert result.status == "imported"
    (again,) = transport.push(server.url, [bundle], token=QUOTA_TOKEN)  # answered: not counted
    assert again.status == "already held"


@pytest.mark.attack
def test_a_site_token_acts_for_its_own_site_only(tmp_path, server, site):
    bound = server.bound
    # Another site's bundle, and its receipt, reach the server with the general token.
    households(1, site.public.site)
    (theirs,) = export(tmp_path, site, server, name="theirs")
    (pushed,) = transport.push(server.url, [theirs], token=TOKEN)
    (their_receipt,) = pushed.answer["receipts"]
    # The site token cannot upload it: not signed by its key. Final, and not kept.
    (refused,) = transport.push(server.url, [theirs], token=SITE_TOKEN)
    assert (refused.status, refused.http_status, refused.error) == ("failed", 403, "wrong-site")
    (fresh,) = seal([{"id": str(uuid.uuid4())}], identity=site, recipients=[server.identity.public],
                    out_dir=tmp_path / "theirs", after=ChainLink(1, bytes.fromhex(pushed.answer["digest"])))
    (refused,) = transport.push(server.url, [fresh.path], token=SITE_TOKEN)
    assert (refused.http_status, refused.error, refused.attempts) == (403, "wrong-site", 2)
    # Nor see, nor abandon, another token's upload in progress.
    data = Path(fresh.path).read_bytes()
    url = server.url + f"uploads/{uploaded_sha(fresh.path)}"
    assert httpx.put(url, headers={**auth(), "Content-Range": f"bytes 0-99/{len(data)}"},
                     content=data[:100]).status_code == 202
    assert httpx.get(url, headers=auth(SITE_TOKEN)).status_code == 404
    assert httpx.delete(url, headers=auth(SITE_TOKEN)).status_code == 204
    assert httpx.get(url, headers=auth()).json()["offset"] == 100
    assert httpx.delete(url, headers=auth()).status_code == 204
    assert [p.name for p in (server.root / "uploads" / uploaded_sha(fresh.path)).iterdir()
            if p.name != ".lock"] == []
    # Its own site's bundle goes in.
    households(3, "zero")
    mine = [tmp_path / "mine" / b.file_name
            for b in export_pending(tmp_path / "mine", identity=bound,
                                    recipients=[server.identity.public])]
    (ok,) = transport.push(server.url, mine, token=SITE_TOKEN)
    assert ok.status == "imported", ok
    (my_receipt,) = ok.answer["receipts"]
    # It sees only its own receipts, whatever it asks for.
    for query in ("", f"?site={site.public.site}"):
        names = [r["name"] for r in httpx.get(server.url + "receipts/" + query,
                                              headers=auth(SITE_TOKEN)).json()["receipts"]]
        assert their_receipt not in names
        assert names == ([my_receipt] if not query else [])
    assert their_receipt in [r["name"] for r in httpx.get(server.url + "receipts/",
                                                          headers=auth()).json()["receipts"]]
    got = httpx.get(server.url + f"receipts/{their_receipt}", headers=auth(SITE_TOKEN))
    assert (got.status_code, got.json()["error"]) == (404, "no-such-file")
    assert httpx.get(server.url + f"receipts/{my_receipt}", headers=auth(SITE_TOKEN)).status_code == 200
    # And only the outbox bundles sealed for its key.
    (for_zero,) = seal([{"id": 1}], identity=server.identity, recipients=[bound.public],
                       out_dir=server.root / "outbox", after=ChainLink(0, None))
    (for_other,) = seal([{"id": 2}], identity=server.identity, recipients=[site.public],
                        out_dir=server.root / "outbox", after=ChainLink(1, for_zero.digest))
    try:
        names = [b["name"] for b in httpx.get(server.url + "outbox/",
                                              headers=auth(SITE_TOKEN)).json()["bundles"]]
        assert names == [os.path.basename(for_zero.path)]
        other = os.path.basename(for_other.path)
        assert httpx.get(server.url + f"outbox/{other}", headers=auth(SITE_TOKEN)).status_code == 404
        assert httpx.get(server.url + f"outbox/{other}", headers=auth()).status_code == 200
    finally:
        os.unlink(for_zero.path)
        os.unlink(for_other.path)
    assert httpx.get(server.url, headers=auth(SITE_TOKEN)).json()["site_key"] == bound.fingerprint


@pytest.mark.attack
@pytest.mark.parametrize("record", [
    {"model": "test_app.household"},
    {"id": "not-a-uuid", "model": "test_app.household"},
])
def test_malformed_signed_records_get_a_json_4xx_that_push_does_not_retry(tmp_path, server, site, record):
    """Issue 10: a trusted sender's malformed records used to give an HTML 500
    (or a 503) that `bundle push` retried; now the record is imported as ``failed``
    with its reason (the apply engine's choice), or the bundle gets one JSON
    refusal, final; never a retry."""
    (tmp_path / "bad").mkdir()
    (sealed,) = seal([record], identity=site, recipients=[server.identity.public],
                     out_dir=tmp_path / "bad", after=ChainLink(0, None))
    (result,) = transport.push(server.url, [sealed.path], token=TOKEN)
    if result.status == "imported":  # taken in, the record failed with a one-line reason
        report = result.answer["report"]
        assert (report["applied"], report["failed"]) == (0, 1), report
        assert all("\n" not in line and "Traceback" not in line for line in report["messages"])
        return
    assert result.status == "failed" and 400 <= result.http_status < 500, result
    assert result.attempts == 2, "asked for the offset, sent the file, and stopped"
    assert result.reason and "\n" not in result.reason and "Traceback" not in result.reason
    raw = httpx.put(server.url + f"uploads/{uploaded_sha(sealed.path)}", headers=auth(),
                    content=Path(sealed.path).read_bytes())
    assert raw.headers["content-type"] == "application/json"
    assert raw.json()["error"] == result.error
    assert not (server.root / "inbox" / "done" / os.path.basename(sealed.path)).exists()


@pytest.mark.attack
def test_the_quota_holds_against_parallel_starts(server):
    """Many new uploads of one token at once: exactly the quota's worth start."""
    from concurrent.futures import ThreadPoolExecutor

    ids = [hashlib.sha256(f"parallel {n}".encode()).hexdigest() for n in range(12)]

    def start(uid):
        return httpx.put(server.url + f"uploads/{uid}", content=b"",
                         headers={**auth(QUOTA_TOKEN), "Content-Range": "bytes */1000"}).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(start, ids))
    try:
        assert sorted(codes) == [202] * MAX_UNFINISHED + [413] * (len(ids) - MAX_UNFINISHED)
        created = [uid for uid in ids if (server.root / "uploads" / uid / "upload.json").exists()]
        assert len(created) == MAX_UNFINISHED
    finally:
        for uid in ids:
            httpx.delete(server.url + f"uploads/{uid}", headers=auth())
