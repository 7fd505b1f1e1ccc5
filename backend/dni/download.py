"""Downloading one published file so that it survives bad networks, and proving it is the
file the catalogue names.

The bytes go to `<file>.part`; a later attempt (a retry, or the next `dni get`) resumes it
with an HTTP Range request, starts over when the server answers 416 (the range no longer
fits its file) or ignores the range, and tries the next mirror when one fails. A read
that brings no byte for `stall_s` seconds counts as a failure. Retries wait a little
longer each time. Nothing but a complete file whose SHA-256 matches leaves this module:
a mismatch deletes the part and says which file, what was expected and what came.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .catalogue import Download
from .errors import Cancelled, DNIError

CHUNK = 1 << 16
# Room left on the disk beyond the files themselves: a full disk breaks more than us.
DISK_MARGIN = 64 << 20

Progress = Callable[[int], None]  # bytes just written


class DownloadError(DNIError):
    """A file could not be fetched from any mirror, or is not the published file."""


class ChecksumError(DownloadError):
    """The complete file's SHA-256 is not the catalogue's."""


class _Retry(Exception):
    """This attempt failed in a way another attempt may not."""


class _Restart(Exception):
    """The part on disk cannot be resumed: start the file again."""


@dataclass(frozen=True)
class Fetcher:
    """How hard to try: `stall_s` without a byte aborts an attempt, `attempts` per
    mirror, waiting `backoff_s`, then twice that, ... between them."""

    stall_s: float = 30.0
    attempts: int = 3
    backoff_s: float = 1.0

    @classmethod
    def from_env(cls) -> Fetcher:
        """The defaults, or DNI_DOWNLOAD_STALL_S / DNI_DOWNLOAD_BACKOFF_S (tests, slow
        links)."""
        return cls(stall_s=_env_seconds("DNI_DOWNLOAD_STALL_S", cls.stall_s),
                   backoff_s=_env_seconds("DNI_DOWNLOAD_BACKOFF_S", cls.backoff_s))

    def fetch(self, item: Download, part: Path, progress: Progress | None = None,
              cancelled: Callable[[], bool] | None = None) -> None:
        """Make `part` the complete, verified file (resuming what is there)."""
        problems: list[str] = []
        for url in item.urls:
            for attempt in range(self.attempts):
                if attempt:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
                try:
                    self._attempt(url, item, part, progress, cancelled)
                except _Retry as exc:
                    problems.append(str(exc))
                    continue
                except _Restart:
                    problems.append(f"{url} could not resume the unfinished file")
                    part.unlink(missing_ok=True)
                    continue
                verify(part, item)
                return
        last = problems[-1] if problems else "no answer"
        raise DownloadError(f"{item.file}: could not download it ({last})")

    def _attempt(self, url: str, item: Download, part: Path, progress: Progress | None,
                 cancelled: Callable[[], bool] | None) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have > item.size:
            raise _Restart
        if have == item.size:
            return  # complete: the hash decides
        request = urllib.request.Request(url, headers={"User-Agent": f"dni/{__version__}"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            response = urllib.request.urlopen(request, timeout=self.stall_s)  # noqa: S310
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416:
                raise _Restart from None
            raise _Retry(f"{url} answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                reason = f"no answer for {self.stall_s:g} s"
            raise _Retry(f"{url}: {reason}") from None
        with response:
            have = _start_offset(response, have, item, url)
            mode = "ab" if have else "wb"
            with part.open(mode) as out:
                _copy(response, out, item.size - have, url, progress, cancelled,
                      self.stall_s)


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise DownloadError(f"{name}={text!r}: expected seconds from 0 to 3600")
    return value


def _start_offset(response: http.client.HTTPResponse, have: int, item: Download,
                  url: str) -> int:
    """Where the response's bytes start: `have` for a partial answer, 0 for a whole one
    (the server ignored the range). DownloadError if the server's file has another size
    than the catalogue's."""
    if response.status == 206:
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        if total.isdigit() and int(total) != item.size:
            raise _wrong_size(item, int(total), url)
        return have
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) != item.size:
        raise _wrong_size(item, int(length), url)
    return 0


def _wrong_size(item: Download, got: int, url: str) -> DownloadError:
    return DownloadError(f"{item.file}: {url} serves {got} bytes, the catalogue says "
                         f"{item.size}; not the published file")


def _copy(response: http.client.HTTPResponse, out: object, wanted: int, url: str,
          progress: Progress | None, cancelled: Callable[[], bool] | None,
          stall_s: float) -> None:
    """Copy up to `wanted` bytes; _Retry when the connection ends early or stalls."""
    got = 0
    while got < wanted:
        if cancelled is not None and cancelled():
            raise Cancelled("the download was cancelled")
        try:
            # read1: what has arrived, so that a stall keeps the bytes before it
            chunk = response.read1(min(CHUNK, wanted - got))
        except TimeoutError:
            raise _Retry(f"no data from {url} for {stall_s:g} s") from None
        except (http.client.IncompleteRead, ConnectionError, OSError) as exc:
            raise _Retry(f"{url}: the connection broke ({exc})") from None
        if not chunk:
            raise _Retry(f"{url}: the connection closed after {got} of {wanted} bytes")
        out.write(chunk)  # type: ignore[attr-defined]
        got += len(chunk)
        if progress is not None:
            progress(len(chunk))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, item: Download) -> None:
    """ChecksumError (and the file deleted) unless `path` is the published file."""
    size = path.stat().st_size
    if size != item.size:
        path.unlink(missing_ok=True)
        raise ChecksumError(f"{item.file}: {size} bytes, the catalogue says {item.size}; "
                            "the file was deleted")
    actual = sha256_of(path)
    if actual != item.sha256:
        path.unlink(missing_ok=True)
        raise ChecksumError(f"{item.file}: checksum mismatch: expected sha256 {item.sha256}, "
                            f"got {actual}; the file was deleted")


def check_disk_space(folder: Path, needed: int) -> None:
    """DownloadError before anything is fetched when `needed` bytes will not fit."""
    free = shutil.disk_usage(folder).free
    if free < needed + DISK_MARGIN:
        raise DownloadError(f"not enough disk space in {folder}: {needed / 2**20:.0f} MiB "
                            f"to download, {free / 2**20:.0f} MiB free")
