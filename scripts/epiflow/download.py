"""Fetch a source (http/https/ftp URL or local path) to a destination: atomic, checksum-verified, retried on
transient failures, taken from a local mirror by basename when one is given, and skipped on reruns when the
destination is already there and verified."""

import functools
import hashlib
import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from epiflow.errors import DownloadError
from epiflow.io_text import atomic_path

log = logging.getLogger(__name__)

URL_SCHEMES = ("http", "https", "ftp")
CHUNK = 1 << 20
# HTTP statuses worth retrying: timeouts, rate limits and server-side failures.
_RETRY_STATUS = {408, 429}


class _Transient(Exception):
    """A failure that a retry may fix (5xx, connection reset, short body)."""


def sha256sum(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_url(source: str | os.PathLike) -> bool:
    """True for http, https and ftp URLs (the sources fetched over the network)."""
    return urllib.parse.urlparse(str(source)).scheme in URL_SCHEMES


@functools.cache
def _mirror_index(mirror: str) -> dict[str, Path]:
    """basename -> path of every file under `mirror` (recursive; built once per mirror and process)."""
    index: dict[str, Path] = {}
    for root, dirs, files in os.walk(mirror, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            index.setdefault(name, Path(root) / name)
    log.info("mirror %s: %d files indexed", mirror, len(index))
    return index


def mirror_lookup(url: str, mirror: str | os.PathLike) -> Path | None:
    """The file under `mirror` whose name is the URL's basename, or None."""
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    return _mirror_index(str(Path(mirror).resolve())).get(name) if name else None


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _up_to_date(source: str, dest: Path, sha256: str | None) -> bool:
    """dest exists and matches the expected digest, or (no digest given) the sidecar left by the last fetch of
    the same source."""
    if not dest.is_file():
        return False
    actual = sha256sum(dest)
    if sha256:
        return actual == sha256.lower()
    sidecar = _sidecar(dest)
    return sidecar.is_file() and sidecar.read_text().split() == [actual, source]


def _copy_stream(stream, out: Path, expected_length: int | None, source: str) -> None:
    written = 0
    with open(out, "wb") as fh:
        while chunk := stream.read(CHUNK):
            fh.write(chunk)
            written += len(chunk)
    if expected_length is not None and written != expected_length:
        raise _Transient(f"{source}: got {written} of {expected_length} bytes (truncated transfer)")


def _download(url: str, out: Path, timeout: float) -> None:
    """One attempt: URL -> out. HTTP 4xx (except 408/429) is a DownloadError; other failures are _Transient."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            _copy_stream(response, out, int(length) if length else None, url)
    except urllib.error.HTTPError as err:
        err.close()  # the error carries the open response; close it to free the socket
        if err.code < 500 and err.code not in _RETRY_STATUS:
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason} (not retried)") from err
        raise _Transient(f"{url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise _Transient(f"{url}: {err}") from err


def _download_with_retries(url: str, out: Path, retries: int, timeout: float, backoff: float) -> None:
    for attempt in range(retries + 1):
        try:
            return _download(url, out, timeout)
        except _Transient as err:
            if attempt == retries:
                raise DownloadError(f"{err} (gave up after {retries + 1} attempts)") from err
            wait = backoff * 2**attempt
            log.warning(
                "%s; retrying in %.1f s (attempt %d of %d)",
                err,
                wait,
                attempt + 2,
                retries + 1,
            )
            time.sleep(wait)


def _copy_local(path: Path, out: Path, source: str) -> None:
    if not path.is_file():
        raise DownloadError(f"{source}: local file not found")
    shutil.copyfile(path, out)


def fetch(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    sha256: str | None = None,
    mirror: str | os.PathLike | None = None,
    retries: int = 3,
    timeout: float = 60,
    backoff: float = 1.0,
) -> Path:
    """Fetch `source` (http/https/ftp URL or local path, already resolved) to `dest` and return dest.

    Written to a temporary file next to dest and moved into place, so dest is either complete or absent. A URL
    whose basename exists under `mirror` is copied from there. `sha256`, when given, must match (else a
    DownloadError naming both digests; nothing is left at dest). A dest that already matches `sha256` (or, with
    no digest, the `.sha256` sidecar of the last fetch of the same source) is not fetched again. `retries`
    extra attempts, `backoff * 2**k` seconds apart, follow 5xx, connection errors and truncated bodies."""
    source, dest = str(source), Path(dest)
    if _up_to_date(source, dest, sha256):
        log.info("%s: up to date, not fetched again", dest)
        return dest
    for stale in dest.parent.glob(f".{dest.name}.*.part"):
        # a killed fetch (SIGKILL skips atomic_path's clean-up) leaves its partial temporary file behind
        log.warning("%s: removing %s left by an interrupted fetch", dest, stale.name)
        stale.unlink(missing_ok=True)
    local = mirror_lookup(source, mirror) if mirror and is_url(source) else None
    with atomic_path(dest) as tmp:
        if local is not None:
            log.info("%s: taken from mirror %s", source, local)
            _copy_local(local, tmp, str(local))
        elif is_url(source):
            log.info("%s: downloading to %s", source, dest)
            _download_with_retries(source, tmp, retries, timeout, backoff)
        else:
            path = source.removeprefix("file://")
            _copy_local(Path(path), tmp, source)
        actual = sha256sum(tmp)
        if sha256 and actual != sha256.lower():
            raise DownloadError(f"{source}: checksum mismatch: expected sha256 {sha256.lower()}, got {actual}")
    with atomic_path(_sidecar(dest)) as tmp:
        tmp.write_text(f"{actual}  {source}\n")
    return dest
