"""A slot runner's memory, read from ``/proc`` while it runs a cell (``bench_notebooks.py
--parts memory``): the template's RSS and PSS, the relay's RSS, and the unique set size of the
sandbox's processes (its private pages, counted once)."""

from __future__ import annotations

from common import language_image


def runner_memory(language: str) -> list:
    """The memory figures of the runner of ``language`` running the cell."""
    import docker

    image = language_image(language)
    client = docker.from_env(timeout=30)
    try:
        found = [
            c for c in client.containers.list(filters={"label": ["braindrill.pooled=1"]})
            if c.attrs["Config"]["Image"] == image
        ]  # fmt: skip
        tops = []
        for c in found:  # a runner the pool removes meanwhile (one too many) is gone
            try:
                tops.append(client.api.top(c.id, ps_args="-o pid,ppid,args")["Processes"])
            except docker.errors.NotFound:
                continue
    finally:
        client.close()
    figures = []
    for top in tops:  # the runner running the cell: its sandbox has the most private pages
        try:
            figures.append(runner_figures(top))
        except (OSError, StopIteration, ValueError):
            continue  # a runner going away meanwhile
    return max(figures, key=lambda row: row[-1])


def runner_figures(top) -> list:
    """Template RSS and PSS, relay RSS and the sandbox's USS of one runner (``docker top``)."""
    procs = {int(p): (int(pp), args) for p, pp, args in top}
    relay = next(p for p, (pp, args) in procs.items() if "python3" in args and
                 procs.get(pp, (0, ""))[1].startswith("timeout"))  # fmt: skip
    template = min(p for p, (pp, _) in procs.items() if pp == relay)
    sandbox = [p for p in procs if p not in (relay, template) and descends(p, relay, procs)]
    t = smaps(template)
    return [t["Rss"], t["Pss"], smaps(relay)["Rss"], sum(uss(p) for p in sandbox)]


def descends(pid: int, ancestor: int, procs: dict) -> bool:
    while pid in procs:
        pid = procs[pid][0]
        if pid == ancestor:
            return True
    return False


def smaps(pid: int) -> dict:
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return values


def uss(pid: int) -> float:
    values = smaps(pid)
    return values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
