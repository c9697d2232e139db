"""Packages at run time, without opening the sandbox's network: the server fetches binary wheels
for the sandbox's Python and platform (``pip download --only-binary=:all:``: no package's code
runs here, no sdist is built), reads them as zips (``wheels.py``) into a per-kernel or
per-session site tree kept in memory, and hands that tree to each of the owner's sandboxes with
its payload (``protocol.SITE_DIR``, first on the program's ``sys.path``).

Only the names and versions a user asks for (and their dependencies) reach the index, sent by
the server. The wheels are kept in ``cache_dir``, shared by every kernel and session: a second
install of the same version downloads nothing. An owner's packages are dropped with its state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import platform
import sys
import urllib.error
import urllib.request

from traitlets import Bool, Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from ..errors import PackageIndexError, PackageRefused, PackagesTooLarge
from ..sandbox.protocol import SITE_DIR
from . import wheels

OFF = (
    "package installation is off on this server: an operator turns it on with "
    "c.Packages.enabled = True"
)
PROBE_TIMEOUT_S = 10.0  # asking the index whether a project exists, after pip found nothing


@dataclasses.dataclass
class Installed:
    """One owner's packages: the requirements it asked for (by canonical name), the
    distributions they resolved to, and the site tree's files (path → bytes)."""

    requirements: dict[str, str]
    dists: dict[str, str]  # canonical name → version
    files: dict[str, bytes]
    size: int


@dataclasses.dataclass
class Report:
    """What one install did: every distribution of the resolution (``{name, version}``), and the
    preloaded ones left out (the sandbox's own copy is used)."""

    packages: list[dict]
    preloaded: list[str]


class Packages(LoggingConfigurable):
    """The operator's policy for packages, the shared wheel cache, and every kernel's and
    session's installed packages by owner key (as ``StateStore`` keeps their states). One
    instance, created by the engine."""

    enabled = Bool(
        False,
        config=True,
        help="Let kernels (%pip install) and REST requests ('packages') install Python packages. "
        "The server downloads binary wheels from index_url; the sandbox still has no network.",
    )
    index_url = Unicode(
        "https://pypi.org/simple", config=True, help="The package index (PEP 503 'simple' API)."
    )
    allowed = List(
        Unicode(),
        config=True,
        help="If not empty, the only distributions that may be installed (dependencies "
        "included), by name.",
    )
    refused = List(
        Unicode(), config=True, help="Distributions that may never be installed, by name."
    )
    max_mib = Integer(
        32,
        config=True,
        help="The most a kernel's or session's installed packages may take, unpacked, in MiB (a "
        "cap of their own, not the state's). They are unpacked into the sandbox's work "
        "directory, so keep it below LimitsPolicy.workdir_mib.",
    )
    cache_dir = Unicode(
        config=True,
        help="Where downloaded wheels are kept, shared by every kernel and session (default: "
        "$XDG_CACHE_HOME/braindrill/wheels, else ~/.cache/braindrill/wheels).",
    )
    timeout_s = Float(300.0, config=True, help="The longest one pip download may take, in seconds.")
    platforms = List(
        Unicode(),
        config=True,
        help="The wheel platform tags the sandboxes accept (default: manylinux_2_17 to 2_36 "
        "and manylinux2014 for this machine's architecture: Debian 12's glibc).",
    )

    @default("cache_dir")
    def _default_cache_dir(self):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "braindrill", "wheels")

    @default("platforms")
    def _default_platforms(self):
        arch = platform.machine() or "x86_64"
        return [
            *(f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)),
            f"manylinux2014_{arch}",
        ]

    @validate("max_mib")
    def _check_max_mib(self, proposal):
        if proposal["value"] <= 0:
            raise TraitError(f"Packages.max_mib must be > 0 (MiB), not {proposal['value']}")
        return proposal["value"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._owners: dict[str, Installed] = {}
        self._lock: asyncio.Lock | None = None  # one pip at a time into the shared cache

    # -- by owner ---------------------------------------------------------------------------------
    def site(self, key: str | None) -> dict[str, bytes]:
        """The site tree of ``key`` (path → bytes; empty when it installed nothing)."""
        installed = self._owners.get(key) if key is not None else None
        return installed.files if installed else {}

    def listing(self, key: str) -> list[dict]:
        """``{name, version}`` of each distribution ``key`` has installed, by name."""
        installed = self._owners.get(key)
        dists = installed.dists if installed else {}
        return [{"name": n, "version": v} for n, v in sorted(dists.items())]

    def drop(self, key: str) -> None:
        """Forget the packages of ``key``: dropped with its state."""
        self._owners.pop(key, None)

    # -- installing -------------------------------------------------------------------------------
    async def install(self, key: str, items, python: str, preloaded: set[str]) -> Report:
        """Install the requirements ``items`` for ``key``, resolved together with what it
        installed before, for the sandbox's ``python`` (``3.11.2``). ``preloaded``: canonical
        names the sandbox imports before any code (their version cannot change). Nothing of
        ``key`` changes unless all of it succeeds. Raises ``PackageRefused``,
        ``PackagesTooLarge``, ``PackageIndexError``."""
        if not self.enabled:
            raise PackageRefused(OFF)
        reqs = wheels.parse_requirements(items)
        for req in reqs:
            self._check_name(wheels.name_of(req))
            if wheels.name_of(req) in preloaded:
                raise PackageRefused(
                    f"{req.name} is preloaded in this sandbox: its version cannot change in this "
                    f"kernel or session (import {req.name} gives the image's copy)"
                )
        before = self._owners.get(key)
        wanted = dict(before.requirements) if before else {}
        wanted.update({wheels.name_of(req): str(req) for req in reqs})
        return await self._resolve(key, wanted, python, preloaded)

    async def uninstall(self, key: str, names: list[str], python: str, preloaded) -> Report:
        """Forget requirements of ``key`` by name and resolve the rest again. Raises
        ``PackageRefused`` for a name it did not ask for."""
        before = self._owners.get(key)
        wanted = dict(before.requirements) if before else {}
        for name in names:
            if wheels.name_of(name) not in wanted:
                raise PackageRefused(f"{name} was not installed with %pip install here")
            del wanted[wheels.name_of(name)]
        if not wanted:
            self.drop(key)
            return Report([], [])
        return await self._resolve(key, wanted, python, preloaded)

    async def _resolve(self, key, wanted: dict[str, str], python: str, preloaded) -> Report:
        files = await self._download(list(wanted.values()), python)
        dists, site, size, skipped = {}, {}, 0, []
        room = self.max_mib << 20
        for filename in files:
            name, version = wheels.wheel_dist(filename)
            self._check_name(name)
            if name in preloaded:
                skipped.append(name)
                continue
            path = os.path.join(self.cache_dir, filename)
            try:
                found = await asyncio.to_thread(wheels.extract, path, room - size, SITE_DIR)
            except PackagesTooLarge as e:
                raise PackagesTooLarge(self._over(dists, name, version, e)) from e
            dists[name] = version
            site.update(found)
            size += sum(len(data) for data in found.values())
        self._owners[key] = Installed(wanted, dists, site, size)
        report = [{"name": n, "version": v} for n, v in sorted(dists.items())]
        return Report(report, skipped)

    def _over(self, dists, name, version, e) -> str:
        return (
            f"the packages would take more than Packages.max_mib ({self.max_mib} MiB) for this "
            f"kernel or session: {name} {version} ({e}); nothing was installed"
        )

    def _check_name(self, name: str) -> None:
        refused = {wheels.name_of(n) for n in self.refused}
        allowed = {wheels.name_of(n) for n in self.allowed}
        if name in refused or (allowed and name not in allowed):
            listed = "" if not allowed else f"; allowed: {', '.join(sorted(allowed))}"
            raise PackageRefused(f"package {name!r} is not allowed on this server{listed}")

    async def _download(self, requirements: list[str], python: str) -> list[str]:
        """``pip download`` into the shared cache, in a subprocess (the loop goes on); returns
        the wheel files of the resolution."""
        major_minor = ".".join(python.split(".")[:2])
        tag = "cp" + major_minor.replace(".", "")
        argv = [
            sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir",
            "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
            "--only-binary=:all:", "--python-version", major_minor, "--implementation", "cp",
            "--abi", tag, *(f"--platform={p}" for p in self.platforms),
            "--index-url", self.index_url, "--dest", ".", "--", *requirements,
        ]  # fmt: skip
        os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.cache_dir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), self.timeout_s)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise PackageIndexError(
                    f"pip download took longer than {self.timeout_s:g} s; nothing was installed"
                ) from None
            except asyncio.CancelledError:
                proc.kill()
                await proc.wait()
                raise
        output = out.decode(errors="replace")
        self.log.debug("pip download %s: %s", requirements, output)
        if proc.returncode != 0:
            raise await self._failure(output, major_minor)
        return wheels.downloaded(output)

    async def _failure(self, output: str, python: str) -> Exception:
        """A clear error for pip's failure: no such package, no wheel for the sandbox, no
        matching version, the index unreachable."""
        missing = wheels.not_found(output)
        if missing is None:
            if "NewConnectionError" in output or "Max retries exceeded" in output:
                return PackageIndexError(f"the package index {self.index_url} cannot be reached")
            return PackageRefused(f"pip download failed: {wheels.error_lines(output)}")
        requirement, versions = missing
        name = wheels.name_of(requirement.split("[")[0].split("=")[0].split("<")[0].split(">")[0])
        if versions:
            return PackageRefused(
                f"no version of {name} matches {requirement!r} among those with a wheel for the "
                f"sandbox's Python {python}: {', '.join(versions[-10:])}"
            )
        exists = await asyncio.to_thread(self._project_exists, name)
        if exists is False:
            return PackageRefused(f"no package named {name!r} on {self.index_url}")
        return PackageRefused(
            f"{name} has no wheel for the sandbox's Python {python} on {self.platforms[0]} (or "
            "any/pure Python): only binary wheels are installed, no source builds"
        )

    def _project_exists(self, name: str) -> bool | None:
        """Whether the index has a project page for ``name`` (None: it did not say)."""
        url = f"{self.index_url.rstrip('/')}/{name}/"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S):
                return True
        except urllib.error.HTTPError as e:
            return False if e.code == 404 else None
        except (OSError, ValueError):
            return None


class PackageAccess:
    """The front doors' API to packages, a mixin of ``ExecutionEngine`` (which provides
    ``packages``, ``version`` and ``drop_state``)."""

    async def install_packages(self, key: str, requirements: list[str], language) -> Report:
        """Install ``requirements`` (pip's syntax, names and versions only) for the kernel or
        session ``key``: its later executions import them. Raises ``PackageRefused``,
        ``PackagesTooLarge``, ``PackageIndexError``."""
        python = await self._python_of(language)
        return await self.packages.install(key, requirements, python, _preloaded(language))

    async def uninstall_packages(self, key: str, names: list[str], language) -> Report:
        python = await self._python_of(language)
        return await self.packages.uninstall(key, names, python, _preloaded(language))

    def installed_packages(self, key: str) -> list[dict]:
        """``{name, version}`` of what ``key`` installed."""
        return self.packages.listing(key)

    async def _with_packages(self, execution, key: str | None) -> list[dict]:
        """Called by ``run``: install the packages an execution asks for (REST's ``packages``:
        for its session, or for it alone) and give it its owner's site tree. Returns what the
        request installed."""
        report = []
        if execution.packages:
            owner = key or f"once:{execution.id}"
            report = await self.install_packages(owner, execution.packages, execution.language)
            report = report.packages
            execution.site = self.packages.site(owner)
            if key is None:
                self.packages.drop(owner)
        elif key is not None:
            execution.site = self.packages.site(key)
        return report

    async def _python_of(self, language) -> str:
        if not language.prestart:
            raise PackageRefused(
                f"packages can be installed for Python only, not {language.name} "
                "(JavaScript and TypeScript: not supported yet)"
            )
        version = await self.version(language, 15.0)
        if not version:
            raise PackageIndexError(f"the Python version of {language.name}'s image is not known")
        return version


def _preloaded(language) -> set[str]:
    """The distributions a language's sandbox imports before any code (``numpy``, ``pandas``,
    ``matplotlib`` for python-data)."""
    return {wheels.name_of(module.split(".")[0]) for module in language.preload}
