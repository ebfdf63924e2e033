"""Downloads of the real data: verified, atomic, trust on first use.

Downloads only ever talk to a loopback HTTP server started by the ``http_server`` fixture.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import threading
import urllib.error
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from slicreg_lite.cohort.downloads import (
    ChecksumError,
    download,
    fetch_dataset,
    load_manifest,
    sha256_of,
)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip_bytes(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, content in files.items():
            zipped.writestr(name, content)
    return buffer.getvalue()


# ------------------------------------------------------------------ loopback server
class _Handler(SimpleHTTPRequestHandler):
    """Serves a folder, counts requests, and has one URL that hangs up mid-transfer."""

    def log_message(self, format, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.server.request_count += 1
        if self.path == "/truncated":
            # Promise 100000 bytes, send a few, hang up: a dropped connection.
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"only a few bytes")
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """A loopback HTTP server serving ``tmp_path / "served"``; shut down after the test."""
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_Handler, directory=str(folder)))
    server.request_count = 0
    # A short poll interval makes shutdown() quick.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}",
                              folder=folder, server=server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ------------------------------------------------------------------------- download
def test_download_with_correct_checksum_writes_the_file(http_server, tmp_path):
    payload = b"abdominal CT" * 1000
    (http_server.folder / "scan.bin").write_bytes(payload)
    dest = tmp_path / "downloads" / "scan.bin"

    result = download(f"{http_server.url}/scan.bin", dest, _digest(payload), progress=False)

    assert result == dest
    assert dest.read_bytes() == payload
    assert sha256_of(dest) == _digest(payload)
    assert not dest.with_name("scan.bin.part").exists()


def test_download_with_wrong_checksum_leaves_nothing(http_server, tmp_path):
    payload = b"not what you expected"
    (http_server.folder / "scan.bin").write_bytes(payload)
    dest = tmp_path / "scan.bin"
    wrong = "0" * 64

    with pytest.raises(ChecksumError) as caught:
        download(f"{http_server.url}/scan.bin", dest, wrong, progress=False)

    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert wrong in message and _digest(payload) in message and "/scan.bin" in message
    assert not dest.exists()
    assert not dest.with_name("scan.bin.part").exists()


def test_download_http_error_leaves_nothing(http_server, tmp_path):
    dest = tmp_path / "missing.bin"
    with pytest.raises(urllib.error.HTTPError, match="404"):
        download(f"{http_server.url}/missing.bin", dest, "a" * 64, progress=False)
    assert list(tmp_path.iterdir()) == [http_server.folder]


def test_download_dropped_connection_leaves_nothing(http_server, tmp_path):
    dest = tmp_path / "truncated.bin"
    with pytest.raises(ConnectionError, match="closed"):
        download(f"{http_server.url}/truncated", dest, "a" * 64, progress=False)
    assert not dest.exists()
    assert not dest.with_name("truncated.bin.part").exists()


def test_download_interrupted_by_the_user_leaves_nothing(http_server, tmp_path, monkeypatch):
    payload = b"x" * 10_000
    (http_server.folder / "scan.bin").write_bytes(payload)
    dest = tmp_path / "scan.bin"

    class InterruptingBar:  # stands in for tqdm: Ctrl+C after the first chunk
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

        def update(self, n):
            raise KeyboardInterrupt

    monkeypatch.setattr("slicreg_lite.cohort.downloads.tqdm", InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        download(f"{http_server.url}/scan.bin", dest, _digest(payload), chunk_size=1000)
    assert not dest.exists()
    assert not dest.with_name("scan.bin.part").exists()


def test_download_skips_an_existing_file_with_the_right_checksum(http_server, tmp_path):
    payload = b"already here"
    (http_server.folder / "scan.bin").write_bytes(payload)
    dest = tmp_path / "scan.bin"
    download(f"{http_server.url}/scan.bin", dest, _digest(payload), progress=False)
    assert http_server.server.request_count == 1

    download(f"{http_server.url}/scan.bin", dest, _digest(payload), progress=False)
    assert http_server.server.request_count == 1  # no second request

    # A damaged local copy is replaced by a fresh download.
    dest.write_bytes(b"damaged")
    download(f"{http_server.url}/scan.bin", dest, _digest(payload), progress=False)
    assert http_server.server.request_count == 2
    assert dest.read_bytes() == payload


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "a" * 63, "a" * 64 + "\n", None, 123])
def test_download_rejects_a_malformed_sha256(tmp_path, bad):
    with pytest.raises(ValueError, match="sha256 must be .*64 hexadecimal"):
        download("http://127.0.0.1:9/never", tmp_path / "x.bin", bad, progress=False)
    assert not (tmp_path / "x.bin").exists()


# -------------------------------------------------------------------- fetch_dataset
def _manifest(tmp_path, url, sha256):
    path = tmp_path / "manifest.json"
    entry = {"name": "toy", "url": url, "filename": "toy.zip", "description": "a toy set",
             "layout": "bcv", "sha256": sha256}
    path.write_text(json.dumps({"datasets": [entry]}))
    return path


def test_fetch_dataset_verifies_a_published_checksum_and_unpacks(http_server, tmp_path):
    archive = _zip_bytes({"Toy/img/readme.txt": "hello", "Toy/label/readme.txt": "world"})
    (http_server.folder / "toy.zip").write_bytes(archive)
    manifest = _manifest(tmp_path, f"{http_server.url}/toy.zip", _digest(archive))
    cache = tmp_path / "cache"

    root = fetch_dataset("toy", cache, manifest=manifest, progress=False)

    # The zip's single top-level folder becomes the dataset root.
    assert root == cache / "toy"
    assert (root / "img" / "readme.txt").read_text() == "hello"
    assert (root / "label" / "readme.txt").read_text() == "world"
    assert not (cache / "checksums.json").exists()
    assert sorted(p.name for p in cache.iterdir()) == ["toy", "toy.zip"]  # no staging left
    # Fetched before: returned without a request.
    requests = http_server.server.request_count
    assert fetch_dataset("toy", cache, manifest=manifest, progress=False) == root
    assert http_server.server.request_count == requests


def test_fetch_dataset_trusts_on_first_use_then_verifies(http_server, tmp_path):
    first = _zip_bytes({"a.txt": "first version"})
    (http_server.folder / "toy.zip").write_bytes(first)
    manifest = _manifest(tmp_path, f"{http_server.url}/toy.zip", None)
    cache = tmp_path / "cache"

    with pytest.warns(UserWarning, match="not verified against a published checksum"):
        root = fetch_dataset("toy", cache, manifest=manifest, progress=False)

    assert (root / "a.txt").read_text() == "first version"
    record = json.loads((cache / "checksums.json").read_text())
    assert record["toy"]["sha256"] == _digest(first)

    # Someone replaces the file behind the same URL; a fresh fetch must refuse it.
    second = _zip_bytes({"a.txt": "tampered version"})
    (http_server.folder / "toy.zip").write_bytes(second)
    (cache / "toy.zip").unlink()
    (root / "a.txt").unlink()
    root.rmdir()
    with pytest.raises(ChecksumError, match=f"{_digest(first)}.*{_digest(second)}"):
        fetch_dataset("toy", cache, manifest=manifest, progress=False)
    assert sorted(p.name for p in cache.iterdir()) == ["checksums.json"]


def test_fetch_dataset_unknown_name_lists_the_known_ones(tmp_path):
    manifest = _manifest(tmp_path, "http://127.0.0.1:9/toy.zip", None)
    with pytest.raises(ValueError, match=r"name must be one of .*\['toy'\]; got 'nope'"):
        fetch_dataset("nope", tmp_path / "cache", manifest=manifest, progress=False)


def test_shipped_manifest_lists_both_public_datasets():
    manifest = load_manifest()
    assert manifest["bcv_abdomen_isocrop"]["layout"] == "bcv"
    assert manifest["bcv_abdomen_isocrop"]["url"].endswith("/c9GapHY3cx9x82p/download")
    assert manifest["learn2reg_abdomenctct"]["layout"] == "learn2reg"
    for entry in manifest.values():
        assert entry["sha256"] is None  # not published: trust on first use
        assert entry["url"].startswith("https://")


def test_load_manifest_rejects_an_entry_without_url(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"datasets": [{"name": "toy", "filename": "toy.zip",
                                              "description": "", "layout": "bcv",
                                              "sha256": None}]}))
    with pytest.raises(ValueError, match=r"missing \['url'\]"):
        load_manifest(path)
