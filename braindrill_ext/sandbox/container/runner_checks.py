# Braindrill slot runner, part 2 of 3 (after runner_sandbox.py, before runner.py, the relay):
# what the relay reads to tell whether the runner is clean after a sandbox and what it costs --
# the cgroup's counters (v2's files, else v1's) and the processes it can see.
import os


def counter(key, *files):
    """A cgroup counter: v2's file, else v1's."""
    for path in files:
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
            return 0
        except OSError:
            continue
    return 0


def oom_kills():
    return counter(
        "oom_kill", "/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"
    )


def shmem():
    return counter("shmem", "/sys/fs/cgroup/memory.stat", "/sys/fs/cgroup/memory/memory.stat")


def charged():
    """The bytes the cgroup is charged now (v2, else v1)."""
    for path in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
        try:
            with open(path) as f:
                return int(f.read())
        except (OSError, ValueError):
            continue
    return 0


def processes():
    return {name for name in os.listdir("/proc") if name.isdigit()}


def rss_kib(pid):
    """The template's resident memory: what every sandbox shares, copy-on-write."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
