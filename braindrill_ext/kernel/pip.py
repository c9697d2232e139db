"""``%pip`` in a Python kernel's cells: ``%pip install <requirements>``, and ``!pip install`` and
``pip install`` as IPython accepts them, install packages for this kernel through the engine
(``install_packages``: wheels the server fetches, carried to every later cell's sandbox, which
still has no network); ``%pip list`` / ``freeze`` show them, ``%pip uninstall`` drops some.

A cell's pip lines (unindented, anywhere in it) run before the rest of the cell, which then runs
with the packages on its ``sys.path``. Called by ``KernelRequests._run_cell``."""

from __future__ import annotations

import re
import shlex

from ..errors import BraindrillError, PackageRefused

PIP_LINE = re.compile(  # IPython's automagic `pip` only before one of pip's verbs
    r"^(?:(?:%pip3?|!\s*pip3?|!\s*python3?\s+-m\s+pip)\s+(\S.*)"
    r"|pip3?\s+((?:install|uninstall|list|freeze|show|download)\b.*))$"
)
# pip's options that change nothing here (the server resolves, quietly, for the sandbox)
HARMLESS = {"-q", "--quiet", "-U", "--upgrade", "--user", "--no-cache-dir", "-y", "--yes"}
HARMLESS |= {"--disable-pip-version-check", "--no-warn-script-location", "-qq", "-qqq"}


def split_pip(code: str) -> tuple[list[list[str]], str]:
    """The pip commands of a cell (each its words after ``pip``) and the cell without them (an
    empty line in place of each, so line numbers stay)."""
    commands, lines = [], []
    for line in code.split("\n"):
        match = PIP_LINE.match(line.rstrip())
        if match:
            try:
                words = shlex.split(match.group(1) or match.group(2), comments=True)
            except ValueError:
                words = None
            if words:
                commands.append(words)
                lines.append("")
                continue
        lines.append(line)
    return commands, "\n".join(lines)


async def run_pip(engine, key: str, language, commands: list[list[str]], say) -> dict | None:
    """Run a cell's pip commands in order; ``say(text)`` writes to the cell's stdout. Returns
    None when all worked, else the error (``BraindrillError``) that stopped them."""
    for words in commands:
        verb, args = words[0], [w for w in words[1:] if w not in HARMLESS]
        try:
            if verb in ("list", "freeze"):
                _show(engine.installed_packages(key), verb, say)
                continue
            if verb not in ("install", "uninstall"):
                raise PackageRefused(
                    f"pip {verb}: not available here; %pip install, uninstall, list and freeze are"
                )
            bad = [w for w in args if w.startswith("-")]
            if bad or not args:
                raise PackageRefused(
                    f"pip {verb} {' '.join(bad)}: only requirements (names and versions, e.g. "
                    "tabulate==0.9.0) are taken here, no options, files or URLs"
                    if bad
                    else f"pip {verb}: name at least one package"
                )
            before = {p["name"]: p["version"] for p in engine.installed_packages(key)}
            if verb == "install":
                report = await engine.install_packages(key, args, language)
            else:
                report = await engine.uninstall_packages(key, args, language)
            _tell(before, engine.installed_packages(key), report, say)
        except BraindrillError as e:
            return e
    return None


def _show(packages: list[dict], verb: str, say) -> None:
    if verb == "freeze":
        say("".join(f"{p['name']}=={p['version']}\n" for p in packages))
        return
    if not packages:
        say("No packages installed in this kernel (the sandbox's own are not listed).\n")
        return
    width = max(7, *(len(p["name"]) for p in packages))
    lines = [f"{'Package':<{width}} Version", f"{'-' * width} -------"]
    lines += [f"{p['name']:<{width}} {p['version']}" for p in packages]
    say("\n".join(lines) + "\n")


def _tell(before: dict, after: list[dict], report, say) -> None:
    now = {p["name"]: p["version"] for p in after}
    added = [f"{n}-{v}" for n, v in now.items() if before.get(n) != v]
    removed = [f"{n}-{v}" for n, v in before.items() if n not in now]
    lines = []
    if added:
        lines.append(f"Successfully installed {' '.join(added)} (for this kernel)")
    if removed:
        lines.append(f"Successfully uninstalled {' '.join(removed)}")
    if not added and not removed:
        lines.append("Requirement already satisfied: " + ", ".join(sorted(now)))
    if report.preloaded:
        lines.append(
            f"Preloaded in this sandbox, its own copy is used: {', '.join(report.preloaded)}"
        )
    say("\n".join(lines) + "\n")
