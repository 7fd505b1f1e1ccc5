"""A real HTTP server on loopback that serves checkpoints the way release hosts do
(Range requests included) and misbehaves on demand, plus a catalogue that points at it,
with checkpoints of the catalogue's architectures built with spandrel's classes."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN


@dataclass
class Files:
    """What the server holds and how it behaves, per path."""

    content: dict[str, bytes] = field(default_factory=dict)
    # path -> "cut" (the first answer stops halfway), "stall" (the first answer stops
    # sending and waits), "stall-always", "416" (the first ranged request is refused),
    # "404"
    trouble: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    stall_s: float = 5.0
    _spent: set[str] = field(default_factory=set)

    def first_time(self, path: str) -> bool:
        if path in self._spent:
            return False
        self._spent.add(path)
        return True


class _Handler(http.server.BaseHTTPRequestHandler):
    files: Files

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        files = self.files
        path = self.path
        ranged = self.headers.get("Range")
        files.requests.append((path, ranged))
        trouble = files.trouble.get(path)
        if path not in files.content or trouble == "404":
            self.send_error(404)
            return
        data = files.content[path]
        if trouble == "416" and ranged and files.first_time(path):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        start = int(ranged.split("=")[1].split("-")[0]) if ranged else 0
        self.send_response(206 if ranged else 200)
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if trouble == "stall-always" or (trouble in ("cut", "stall")
                                         and files.first_time(path)):
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if trouble.startswith("stall"):
                time.sleep(files.stall_s)
            self.close_connection = True
            return
        self.wfile.write(body)


@contextmanager
def http_server(files: Files) -> Iterator[str]:
    """Serve `files` on 127.0.0.1; yields the base URL."""
    handler = type("Handler", (_Handler,), {"files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def perturbed(state: dict[str, torch.Tensor], seed: int, spread: float = 0.2,
              ) -> dict[str, torch.Tensor]:
    """A 'fine-tuned' copy: each tensor moved by `spread` of its own spread."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + spread * v.std().nan_to_num() * torch.randn(v.shape, generator=g)
            if v.is_floating_point() and v.numel() > 1 else v for k, v in state.items()}


def saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@dataclass
class Pair:
    """A published pair: file name -> bytes, and the state dict each member runs with."""

    name: str
    files: dict[str, bytes]
    states: dict[str, dict[str, torch.Tensor]]


def compact_pair() -> Pair:
    """Real-ESRGAN general's layout: SRVGG Compact, weights under `params`."""
    torch.manual_seed(0)
    base = Compact(num_feat=8, num_conv=2, upscale=4).state_dict()
    other = perturbed(base, 1)
    return Pair("general", {"wdn.pth": saved({"params": base}),
                            "x4v3.pth": saved({"params": other})},
                {"wdn.pth": base, "x4v3.pth": other})


def esrgan_pair() -> Pair:
    """Real-ESRGAN x4plus's layout: RRDBNet with `params_ema` and `params`; the EMA
    weights are the ones that run."""
    torch.manual_seed(0)
    base = ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict()
    gan = perturbed(base, 2)
    stale = {"params": perturbed(base, 3)}
    return Pair("rrdb", {"net.pth": saved({"params_ema": base, **stale}),
                         "gan.pth": saved({"params_ema": gan, **stale})},
                {"net.pth": base, "gan.pth": gan})


def catalogue_text(base_url: str, pair: Pair, family: str, *, sizes: dict[str, int] | None = None,
                   hashes: dict[str, str] | None = None) -> str:
    """A catalogue with one family: `pair`'s files, served under /<pair.name>/."""
    lines = [
        "[[families]]", f'name = "{family}"', 'task = "super-resolve"',
        f'title = "{family} test"', 'architecture = "auto"', "scale = 4",
        'licence = "BSD-3-Clause"', 'homepage = "https://example.org"',
        "[families.axis]", 'name = "detail"', 'low = "soft"', 'high = "crisp"',
    ]
    for position, (file, data) in enumerate(pair.files.items()):
        digest = (hashes or {}).get(file, hashlib.sha256(data).hexdigest())
        size = (sizes or {}).get(file, len(data))
        lines += ["[[families.members]]", f'label = "{file[:-4]}"', f'file = "{file}"',
                  f"position = {position}",
                  f'url = ["{base_url}/{pair.name}/{file}"]',
                  f'sha256 = "{digest}"', f"size = {size}"]
    return "\n".join(lines) + "\n"


def serve_pair(files: Files, pair: Pair) -> None:
    for file, data in pair.files.items():
        files.content[f"/{pair.name}/{file}"] = data


def write_catalogue(folder: Path, text: str) -> Path:
    path = folder / "catalogue.toml"
    path.write_text(text, encoding="utf-8")
    return path
