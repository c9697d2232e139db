"""Per language, hello world end to end: ``POST /lang/<language>`` of a real Jupyter server (one
fresh sandbox: compile, then run) against ``docker run --rm`` of the same image doing the same
compile and run, one execution at a time, both measured in one run, alternating.

    python benchmarks/bench_languages.py                    # every language, 10 runs each
    python benchmarks/bench_languages.py c cpp go --runs 20

Needs the runtime images (``braindrill-images prepare``) and the project installed
(``pip install -e .[test]``). Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import time
from dataclasses import replace

from common import (
    docker_run_argv,
    language_image,
    leftover_containers,
    machine_summary,
    print_table,
    summarize,
)
from server import JupyterServer

from braindrill_ext.engine.limits import LimitsPolicy
from braindrill_ext.languages import LanguageRegistry

HELLO = {
    "python": 'print("hello, world")\n',
    "javascript": 'console.log("hello, world");\n',
    "java": "class Main {\n    public static void main(String[] a) {\n"
    '        System.out.println("hello, world");\n    }\n}\n',
    "ruby": 'puts "hello, world"\n',
    "perl": 'print "hello, world\\n";\n',
    "php": '<?php echo "hello, world\\n";\n',
    "c": '#include <stdio.h>\nint main(void) { puts("hello, world"); return 0; }\n',
    "cpp": '#include <iostream>\nint main() { std::cout << "hello, world" << std::endl; }\n',
    "go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello, world") }\n',
    "rust": 'fn main() { println!("hello, world"); }\n',
    "bash": 'echo "hello, world"\n',
    "lua": 'print("hello, world")\n',
    "typescript": 'const greeting: string = "hello, world";\nconsole.log(greeting);\n',
}
EXPECTED = "hello, world\n"


class Rest:
    """``POST /lang/<language>`` with the code as JSON; one request at a time."""

    def __init__(self, server: JupyterServer, language: str, timeout_s: float):
        self.server, self.language, self.timeout_s = server, language, timeout_s

    def run(self, code: str) -> tuple[str | None, float | None]:
        """Returns what went wrong (or None) and the engine's own duration_ms."""
        problem, result = self.server.execute(self.language, code, EXPECTED, self.timeout_s)
        return problem, result and result["duration_ms"]


class DockerRun:
    """``docker run --rm -i`` per execution: the code on stdin is written to the source file, then
    the language's compile command (if any) and run command, in one container with the sandbox's
    flags. Its memory limit is the compile limit (one container cannot change it midway)."""

    def __init__(self, language, image: str, timeout_s: float):
        limits = LimitsPolicy().defaults(language)
        steps = [f"cat > {shlex.quote(language.source_file)}"]
        if language.compile:
            steps.append(shlex.join(language.compile))
            limits = replace(
                limits,
                memory_mib=max(limits.memory_mib, limits.compile_memory_mib),
                timeout_s=limits.timeout_s + limits.compile_timeout_s,
            )
        steps.append(shlex.join(language.run))
        self.argv = docker_run_argv(image, ["sh", "-c", " && ".join(steps)], limits)
        self.timeout_s = timeout_s

    def run(self, code: str) -> tuple[str | None, None]:
        try:
            proc = subprocess.run(
                self.argv, input=code, capture_output=True, text=True, timeout=self.timeout_s
            )
        except subprocess.TimeoutExpired:
            return "timed out", None
        if proc.stdout == EXPECTED:
            return None, None
        return f"exit {proc.returncode}: {proc.stderr.strip()[:200]}", None


def measure(targets: dict, code: str, runs: int, warmup: int) -> dict:
    """Run the targets alternately (so that both see the same machine load); returns, per target,
    the wall-clock times in ms of the good runs, the engine's durations, and the failures."""
    out = {name: {"times": [], "engine": [], "errors": {}} for name in targets}
    for i in range(warmup + runs):
        for name, target in targets.items():
            start = time.perf_counter()
            problem, engine_ms = target.run(code)
            elapsed = (time.perf_counter() - start) * 1000
            if i < warmup:
                continue
            slot = out[name]
            if problem:
                slot["errors"][problem] = slot["errors"].get(problem, 0) + 1
            else:
                slot["times"].append(elapsed)
                if engine_ms is not None:
                    slot["engine"].append(engine_ms)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("languages", nargs="*", help=f"default: {' '.join(HELLO)}")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per target (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--timeout", type=float, default=300, help="per execution, in seconds")
    args = parser.parse_args(argv)
    registry = LanguageRegistry.from_kernelspecs()
    names = args.languages or list(HELLO)
    rows, problems = [], []
    with JupyterServer(name="languages") as server:
        for name in names:
            language = registry.get(name)
            image = language_image(language.name)
            targets = {
                "rest": Rest(server, language.name, args.timeout),
                "docker": DockerRun(language, image, args.timeout),
            }
            print(f"{language.name}: {args.runs} runs of each ...", flush=True)
            res = measure(targets, HELLO[language.name], args.runs, args.warmup)
            rest, docker, engine = (
                summarize(res["rest"]["times"]),
                summarize(res["docker"]["times"]),
                summarize(res["rest"]["engine"]),
            )
            failures = sum(sum(r["errors"].values()) for r in res.values())
            problems += [f"{language.name} {t}: {e}" for t, r in res.items() for e in r["errors"]]
            rows.append(
                [
                    language.name,
                    "yes" if language.compile else "no",
                    image,
                    rest["p50"],
                    rest["p90"],
                    engine["p50"],
                    docker["p50"],
                    docker["p90"],
                    rest["p50"] / docker["p50"] if docker["n"] and rest["n"] else None,
                    failures,
                ]
            )
    leftovers = leftover_containers(server.pid)  # after the server stopped: its pools are gone
    print_table(
        f"Hello world end to end, compile + run ({args.runs} runs each, alternating; ms)",
        [
            "language",
            "compiled",
            "image",
            "REST p50",
            "REST p90",
            "engine p50",
            "docker run p50",
            "docker run p90",
            "REST / docker run",
            "failures",
        ],
        rows,
        note="REST: POST /lang/<language> over loopback, one fresh sandbox per request; engine: "
        "the Result's duration_ms (payload delivered → outcome). docker run: `docker run --rm -i` "
        f"with the same flags, compile and run in one container. Machine: {machine_summary()}",
    )
    for line in problems:
        print("failure:", line)
    if leftovers:
        print("leftover containers:", *leftovers, sep="\n  ")
    return 1 if leftovers else 0


if __name__ == "__main__":
    raise SystemExit(main())
