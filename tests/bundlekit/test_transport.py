"""bundlekit.transport against a scripted HTTP server on 127.0.0.1 (no Django):
retries and backoff, giving up, hostile listings, and the lazy httpx import.
The real server is exercised in tests/django_adapter/test_rest.py."""

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from bundlekit import transport
from bundlekit.keys import Identity
from bundlekit.writer import ChainLink, seal


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    delays = []
    monkeypatch.setattr(transport, "_sleep", delays.append)
    return delays


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers from ``server.script``: a list of (status, headers, body) per request."""

    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers), len(body)))
        status, headers, payload = self.server.script.pop(0)
        if callable(payload):
            payload = payload(self)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def fake():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script, server.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}/bundles/"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def bundle(tmp_path):
    ident = Identity.generate("site-a")
    (sealed,) = seal([{"id": i, "v": os.urandom(100)} for i in range(50)], identity=ident,
                     recipients=[Identity.generate("central").public], out_dir=tmp_path,
                     after=ChainLink(0, None))
    return sealed


def test_push_retries_5xx_with_backoff_and_honours_retry_after(fake, bundle, no_sleep):
    path = bundle.path
    size = len(open(path, "rb").read())
    fake.script = [
        (503, {"Retry-After": "7"}, {"error": "upload-busy", "reason": "busy"}),
        (502, {}, b"<html>proxy</html>"),
        (202, {"Upload-Offset": "0"}, {"status": "incomplete"}),
        (201, {"Upload-Offset": str(size)}, {"status": "imported", "site": "site-a", "seq": 1}),
    ]
    (result,) = transport.push(fake.url, [path], backoff=0.5)
    assert result.ok and result.status == "imported" and result.attempts == 4
    assert result.bytes_sent == size and result.resumed_from == 0
    assert no_sleep[0] >= 7 * 0.8 and no_sleep[1] < no_sleep[0]  # Retry-After, then backoff
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert [s[1] for s in fake.seen] == [f"/bundles/uploads/{sha}"] * 4
    assert fake.seen[0][2]["Content-Range"] == f"bytes */{size}"
    assert fake.seen[3][2]["Content-Range"] == f"bytes 0-{size - 1}/{size}"


def test_push_resumes_from_the_offset_the_server_reports(fake, bundle):
    size = len(open(bundle.path, "rb").read())
    fake.script = [
        (202, {"Upload-Offset": "1000"}, {}),
        (201, {}, {"status": "imported"}),
    ]
    advanced = []
    (result,) = transport.push(fake.url, [bundle.path], progress=advanced.append)
    assert result.resumed_from == 1000 and result.bytes_sent == size - 1000
    assert fake.seen[1][2]["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
    assert sum(advanced) == size  # the bar starts at what the server already had


def test_push_gives_up_after_the_retries_on_a_dead_server(tmp_path, bundle):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (result,) = transport.push(f"http://127.0.0.1:{port}/bundles/", [bundle.path], retries=2)
    assert (result.status, result.error, result.attempts) == ("failed", "unreachable", 3)
    assert "gave up after 3 attempts" in result.reason


def test_an_offset_past_the_end_is_not_believed(fake, bundle):
    fake.script = [(202, {"Upload-Offset": "99999999"}, {})]
    (result,) = transport.push(fake.url, [bundle.path])
    assert (result.status, result.error) == ("failed", "bad-answer")


def test_a_refusal_is_final_and_the_next_file_still_goes(fake, bundle, tmp_path):
    other = tmp_path / "missing.bundle"
    fake.script = [(403, {}, {"error": "unknown-sender", "reason": "not trusted"})]
    results = transport.push(fake.url, [bundle.path, other])
    assert [(r.status, r.error) for r in results] == [("failed", "unknown-sender"),
                                                      ("failed", "unreadable")]
    assert results[0].reason == "not trusted" and len(fake.seen) == 1


def test_pull_refuses_names_that_are_not_bundle_names_and_bad_downloads(fake, bundle, tmp_path):
    data = open(bundle.path, "rb").read()
    good = bundle.path.split("/")[-1]
    out = tmp_path / "stick"
    out.mkdir()
    fake.script = [
        (200, {}, {"bundles": [
            {"name": "../evil.bundle", "sha256": "0" * 64},
            {"name": "site-a-00000009-00000000.bundle", "sha256": "0" * 64},
            {"name": good, "sha256": hashlib.sha256(data).hexdigest()},
        ]}),
        (200, {}, data),  # does not match the announced sha256 of entry 2
        (200, {}, data),
    ]
    results = transport.pull_each(fake.url, out)
    assert [(r.status, r.error) for r in results] == [
        ("failed", "bad-name"), ("failed", "digest-mismatch"), ("pulled", None)]
    assert sorted(p.name for p in out.iterdir()) == [good]
    assert not (tmp_path / "evil.bundle").exists()


def test_misuse_and_missing_folder(tmp_path, bundle):
    with pytest.raises(ValueError):
        transport.push("ftp://example.org/", [bundle.path])
    with pytest.raises(transport.TransferError):
        transport.pull("http://127.0.0.1:9/bundles/", tmp_path / "nope")


def test_importing_transport_does_not_import_httpx():
    code = ("import sys, bundlekit.transport, bundlekit.cli\n"
            "assert 'httpx' not in sys.modules and 'django' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_5xx_that_says_retry_false_is_final(fake, bundle, no_sleep):
    """The server's settings are wrong, or a bug there: trying again in a few
    seconds cannot help, so push reports it at once (a proxy's 502 still retries)."""
    fake.script = [
        (500, {}, {"error": "server-misconfigured", "reason": "settings are wrong", "retry": False}),
    ]
    (result,) = transport.push(fake.url, [bundle.path])
    assert (result.status, result.http_status, result.error) == ("failed", 500, "server-misconfigured")
    assert result.attempts == 1 and no_sleep == []
