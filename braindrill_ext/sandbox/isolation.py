"""What a sandbox container is, and may do (the sandbox contract of DESIGN.md): its user, its
environment, and its isolation and limits as Docker's HostConfig -- no network unless the
language has it, a read-only root, no capability, no new privileges, Docker's default seccomp,
pids, memory = memory + swap, CPU, nofile and fsize, a size-capped tmpfs /work and /tmp, an init.
A slot runner's container is made the same way, with what making namespaces needs on top
(``runner.py``)."""

from __future__ import annotations

from docker.types import Ulimit

from ..execution import Limits
from ..languages import Language
from . import protocol as p

SANDBOX_USER = "65534:65534"  # nobody:nogroup, present in Debian-based and Alpine images
ENVIRONMENT = {
    "HOME": p.WORKDIR,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    p.DISPLAY_ENV: p.DISPLAY_DIR,
    "MPLCONFIGDIR": "/tmp/matplotlib",  # matplotlib's cache: the root filesystem is read-only
}


def host_config(language: Language, limits: Limits, runtime: str = "") -> dict:
    """``create_host_config`` arguments for a sandbox of ``language`` under ``limits``. A
    compiled language starts under its compile memory limit (the run limit is set before the
    program starts)."""
    lim = limits
    memory = lim.compile_memory_mib if language.compile else lim.memory_mib
    work = f"rw,exec,nosuid,nodev,size={lim.workdir_mib}m,uid=65534,gid=65534,mode=0700"
    return dict(
        init=True,
        network_mode="bridge" if language.network else "none",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=lim.pids,
        mem_limit=f"{memory}m",
        memswap_limit=f"{memory}m",
        nano_cpus=int(lim.cpus * 1e9),
        ulimits=ulimits(lim),
        tmpfs={"/work": work, "/tmp": f"rw,nosuid,nodev,size={lim.workdir_mib}m,mode=1777"},
        log_config={"Type": "none"},
        runtime=runtime or None,
    )


def ulimits(lim: Limits) -> list[Ulimit]:
    return [
        Ulimit(name="nofile", soft=lim.nofile, hard=lim.nofile),
        Ulimit(name="fsize", soft=lim.workdir_mib << 20, hard=lim.workdir_mib << 20),
        Ulimit(name="core", soft=0, hard=0),
    ]
