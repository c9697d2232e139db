"""A package index for the package tests, on this machine: a tiny pure-Python wheel built here
(``make_wheel``) served by a PEP 503 "simple" index on 127.0.0.1 (``WheelIndex``), which counts
the downloads of each file: what proves a second install came from the server's cache. Used by
tests/unit/engine/test_packages.py and the Docker tests of packages."""

from __future__ import annotations

import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_wheel(directory: Path, name: str = "bdtiny", version: str = "1.0", size: int = 0) -> Path:
    """A ``py3-none-any`` wheel of one module ``name`` (``VALUE = "<name> <version>"``; with
    ``size``, a data file of that many bytes too)."""
    dist = f"{name}-{version}.dist-info"
    members = {
        f"{name}/__init__.py": f'VALUE = "{name} {version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: braindrill-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if size:
        members[f"{name}/blob.bin"] = "x" * size
    members[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in [*members, f"{dist}/RECORD"])
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    return path


class WheelIndex:
    """Serves the wheels of ``directory`` as a simple index at ``url`` (``/simple/<name>/``),
    counting GETs by path (``downloads(filename)``). A context manager."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.gets: dict[str, int] = {}
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                index.gets[self.path] = index.gets.get(self.path, 0) + 1
                parts = [p for p in self.path.split("/") if p]
                if len(parts) == 2 and parts[0] == "files":
                    path = index.directory / parts[1]
                    if path.is_file():
                        return self._answer(path.read_bytes(), "application/octet-stream")
                if len(parts) == 2 and parts[0] == "simple":
                    links = [
                        f'<a href="/files/{w.name}">{w.name}</a>'
                        for w in sorted(index.directory.glob("*.whl"))
                        if w.name.split("-")[0].replace("_", "-").lower() == parts[1]
                    ]
                    if links:
                        page = "<html><body>" + "\n".join(links) + "</body></html>"
                        return self._answer(page.encode(), "text/html")
                self.send_error(404)

            def _answer(self, data: bytes, kind: str):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def downloads(self, filename: str) -> int:
        return self.gets.get(f"/files/{filename}", 0)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
