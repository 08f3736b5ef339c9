"""fetch() against a real local HTTP server (127.0.0.1) that can fail in the ways real servers do."""

import hashlib
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from epiflow import download
from epiflow.download import fetch, sha256sum
from epiflow.errors import DownloadError, InputError

BODY = b"chr1\t0\t100\n" * 50
DIGEST = hashlib.sha256(BODY).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """/ok.bed: 200; /missing.bed: 404; /truncated.bed: Content-Length larger than the body, then close;
    /flaky.bed: 500 on the first request, then 200. Requests are counted per path on the server."""

    def do_GET(self):
        hits = self.server.hits
        hits[self.path] += 1
        if self.path == "/missing.bed":
            self.send_error(404, "Not Found")
        elif self.path == "/flaky.bed" and hits[self.path] == 1:
            self.send_error(500, "Internal Server Error")
        elif self.path == "/truncated.bed":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:100])
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.hits = Counter()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def fast_fetch(source, dest, **kwargs):
    return fetch(source, dest, backoff=0, timeout=5, **kwargs)


def test_success_with_checksum(server, tmp_path):
    dest = fast_fetch(f"{server.url}/ok.bed", tmp_path / "sub" / "ok.bed", sha256=DIGEST)
    assert dest.read_bytes() == BODY and sha256sum(dest) == DIGEST
    assert (tmp_path / "sub" / "ok.bed.sha256").read_text().split()[0] == DIGEST


def test_404_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        fast_fetch(f"{server.url}/missing.bed", tmp_path / "missing.bed")
    assert isinstance(info.value, InputError) and "/missing.bed" in str(info.value)
    assert server.hits["/missing.bed"] == 1
    assert list(tmp_path.iterdir()) == []


def test_truncated_body_fails_after_retries(server, tmp_path):
    with pytest.raises(DownloadError, match="truncated") as info:
        fast_fetch(f"{server.url}/truncated.bed", tmp_path / "t.bed", retries=2)
    assert "3 attempts" in str(info.value)
    assert server.hits["/truncated.bed"] == 3
    assert list(tmp_path.iterdir()) == []  # neither dest nor a temporary file is left


def test_checksum_mismatch_names_both_digests(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        fast_fetch(f"{server.url}/ok.bed", tmp_path / "ok.bed", sha256=wrong)
    message = str(info.value)
    assert wrong in message and DIGEST in message and "/ok.bed" in message
    assert list(tmp_path.iterdir()) == []


def test_retry_then_success(server, tmp_path):
    dest = fast_fetch(f"{server.url}/flaky.bed", tmp_path / "flaky.bed")
    assert dest.read_bytes() == BODY and server.hits["/flaky.bed"] == 2


def test_mirror_hit_never_contacts_server(server, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "deep" / "er").mkdir(parents=True)
    (mirror / "deep" / "er" / "ok.bed").write_bytes(BODY)
    dest = fast_fetch(
        f"{server.url}/files/ok.bed",
        tmp_path / "out" / "ok.bed",
        sha256=DIGEST,
        mirror=mirror,
    )
    assert dest.read_bytes() == BODY and sum(server.hits.values()) == 0
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fast_fetch(
            f"{server.url}/ok.bed",
            tmp_path / "out" / "bad.bed",
            sha256="1" * 64,
            mirror=mirror,
        )
    assert sum(server.hits.values()) == 0
    # Not in the mirror: fetched from the server.
    fast_fetch(f"{server.url}/flaky.bed", tmp_path / "out" / "flaky.bed", mirror=mirror)
    assert server.hits["/flaky.bed"] == 2


def test_mirror_index_is_built_once(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_text("a")
    walks = Counter()
    real_walk = download.os.walk
    monkeypatch.setattr(
        download.os,
        "walk",
        lambda *a, **k: walks.update(["walk"]) or real_walk(*a, **k),
    )
    for name in ("a.txt", "b.txt", "a.txt"):
        download.mirror_lookup(f"https://example.org/x/{name}", tmp_path / "m")
    assert walks["walk"] == 1


def test_rerun_does_not_download_again(server, tmp_path):
    url, dest = f"{server.url}/ok.bed", tmp_path / "ok.bed"
    fast_fetch(url, dest)
    fast_fetch(url, dest)  # verified by the sidecar written after the first fetch
    assert server.hits["/ok.bed"] == 1
    fast_fetch(url, dest, sha256=DIGEST)  # verified by the given checksum
    assert server.hits["/ok.bed"] == 1
    dest.write_bytes(b"changed")  # a damaged file no longer matches the sidecar: fetched again
    fast_fetch(url, dest)
    assert server.hits["/ok.bed"] == 2 and dest.read_bytes() == BODY


def test_local_path_source(tmp_path):
    source = tmp_path / "in.bed"
    source.write_bytes(BODY)
    dest = fast_fetch(source, tmp_path / "copy" / "in.bed", sha256=DIGEST)
    assert dest.read_bytes() == BODY
    with pytest.raises(DownloadError, match="not found"):
        fast_fetch(tmp_path / "nope.bed", tmp_path / "copy" / "nope.bed")
    assert not (tmp_path / "copy" / "nope.bed").exists()


def test_connection_refused_is_retried_then_fails(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    server.server_close()  # nothing listens on this port any more
    with pytest.raises(DownloadError, match="2 attempts"):
        fast_fetch(f"http://127.0.0.1:{port}/ok.bed", tmp_path / "x.bed", retries=1)
    assert list(tmp_path.iterdir()) == []
