"""Wheels, read without running them: requirements checked, a wheel's files taken out of its zip
(names checked, nothing executed, nothing written to disk), and what ``pip download`` said turned
into the files it fetched or a clear reason it failed. Pure functions, used by ``packages.py``;
unit-tested without Docker or network."""

from __future__ import annotations

import re
import stat
import zipfile

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from ..errors import PackageRefused, PackagesTooLarge

MAX_REQUIREMENT = 200  # characters of one requirement
USTAR_NAME, USTAR_PREFIX = 100, 155  # a payload tar's name fields (protocol.py: USTAR only)


def parse_requirements(items) -> list[Requirement]:
    """Requirements as pip takes them (``tabulate``, ``tabulate==0.9.0``, ``rich[jupyter]>=13``),
    but never a URL or a path: only names and versions reach the index. Raises
    ``PackageRefused`` naming the bad one."""
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise PackageRefused("'packages' must be a list of requirements such as 'tabulate==0.9.0'")
    found = []
    for item in items:
        text = item.strip()
        if not text or len(text) > MAX_REQUIREMENT:
            raise PackageRefused(f"bad requirement {item!r}: empty or over {MAX_REQUIREMENT} chars")
        try:
            req = Requirement(text)
        except InvalidRequirement as e:
            raise PackageRefused(f"bad requirement {item!r}: {e}") from e
        if req.url:
            raise PackageRefused(
                f"bad requirement {item!r}: only names and versions, not URLs or paths"
            )
        found.append(req)
    return found


def name_of(req: Requirement | str) -> str:
    """The canonical name (PEP 503) of a requirement or a distribution name."""
    return canonicalize_name(req.name if isinstance(req, Requirement) else req)


def wheel_dist(filename: str) -> tuple[str, str]:
    """A wheel file's canonical distribution name and version."""
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename as e:
        raise PackageRefused(f"not a wheel: {filename!r}") from e
    return canonicalize_name(name), str(version)


def safe_member(name: str) -> bool:
    """A zip member's name that is a plain relative path: no absolute path, no ``..``, no
    backslash, no empty or ``.`` part, no NUL."""
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and "\\" not in name
        and "\0" not in name
        and ".." not in parts
        and "." not in parts
        and "" not in parts
        and ":" not in parts[0]
    )


def fits_ustar(path: str) -> bool:
    """Whether a path fits a USTAR header (name, or prefix + "/" + name)."""
    data = path.encode()
    if len(data) <= USTAR_NAME:
        return True
    cut = data.rfind(b"/", 0, USTAR_PREFIX + 1)
    while cut > 0:
        if len(data) - cut - 1 <= USTAR_NAME:
            return True
        cut = data.rfind(b"/", 0, cut)
    return False


def extract(path: str, room: int, under: str) -> dict[str, bytes]:
    """The files a wheel installs into site-packages: its members, with ``<dist>.data/purelib/``
    and ``platlib/`` moved to the top and the rest of ``.data/`` (scripts, headers, data) left
    out. Only reads the zip. Raises ``PackageRefused`` for a member whose name is unsafe, a
    symlink, or too long to carry under ``under``; ``PackagesTooLarge`` past ``room`` bytes."""
    files: dict[str, bytes] = {}
    filename = path.rsplit("/", 1)[-1]
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise PackageRefused(f"{filename} is not a readable wheel: {e}") from e
    with archive:
        for info in archive.infolist():
            name = info.filename
            if name.endswith("/"):
                continue  # a directory entry
            if not safe_member(name) or stat.S_ISLNK(info.external_attr >> 16):
                raise PackageRefused(f"{filename}: refused member {name!r} (unsafe name or link)")
            top, _, rest = name.partition("/")
            if top.endswith(".data"):
                kind, _, inner = rest.partition("/")
                if kind not in ("purelib", "platlib") or not inner:
                    continue
                name = inner
            if not fits_ustar(f"{under}/{name}"):
                raise PackageRefused(f"{filename}: member name too long to carry: {name!r}")
            room -= info.file_size
            if room < 0:
                raise PackagesTooLarge(f"{filename} does not fit")
            files[name] = archive.read(info)  # reads at most the declared size
    return files


SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded)\s+(\S+\.whl)\s*$", re.M)
NOT_FOUND = re.compile(
    r"Could not find a version that satisfies the requirement (\S+) \(from versions: ([^)]*)\)"
)


def downloaded(output: str) -> list[str]:
    """The wheel files (base names) ``pip download`` fetched or found in its ``--dest``: its
    ``Saved <path>`` and ``File was already downloaded <path>`` lines, in order, once each."""
    names = [match.rsplit("/", 1)[-1] for match in SAVED.findall(output)]
    return list(dict.fromkeys(names))


def not_found(output: str) -> tuple[str, list[str]] | None:
    """The requirement pip found no distribution for, and the versions it saw (None: another
    failure)."""
    match = NOT_FOUND.search(output)
    if match is None:
        return None
    versions = [v.strip() for v in match.group(2).split(",") if v.strip() not in ("", "none")]
    return match.group(1), versions


def error_lines(output: str, most: int = 6) -> str:
    """pip's own ``ERROR:`` lines (its last ones), for a failure nothing else explains."""
    lines = [line for line in output.splitlines() if line.startswith("ERROR:")]
    return " ".join(lines[-most:]) or output.strip()[-600:]
