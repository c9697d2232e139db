"""The compiled and added languages over REST: C, C++, Go, Rust, Bash, Lua, TypeScript.

Per language: hello world, stdin, a runtime error with its exit code, a compile error with the
compiler's message, a warning that does not turn success into an error, and a compile-time bomb
stopped by the compile limits. Then the compile-phase memory limit, separate from the run's.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import eventually, workers
from tests.helpers import sandbox_kinds as sandbox_kind  # noqa: F401 (a fixture: both kinds)

HELLO = "hello, world\n"
STDIN = "braindrill\n"
GREETING = "hi braindrill\n"


def _c_include_bomb() -> str:
    # 2**60 nested inclusions of itself, each cheap: the preprocessor never finishes.
    return (
        "#if __INCLUDE_LEVEL__ == 0\nint main(void) { return 0; }\n#endif\n"
        "#if __INCLUDE_LEVEL__ < 60\n#include __FILE__\n#include __FILE__\n#endif\n"
    )


def _go_type_bomb() -> str:
    # T40's name has 2**40 parts, and fmt needs its type descriptor: a huge generic expansion.
    lines = ["package main", "", 'import "fmt"', "", "type P[A, B any] struct {", "\ta A", "\tb B"]
    lines += ["}", "", "type T0 = P[int, int]"]
    lines += [f"type T{i} = P[T{i - 1}, T{i - 1}]" for i in range(1, 41)]
    return "\n".join([*lines, "", "func main() { fmt.Println(T40{}) }", ""])


def _ts_union_bomb() -> str:
    # Hundreds of 90 000-member template-literal unions: each one type-checks in a fraction of a
    # second, all of them take minutes.
    lines = [
        "type D = '0' | '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9';",
        "type E = '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9';",
        "type N = `${E}${D}${D}${D}${D}`;",
    ]
    for i in range(400):
        lines += [f"type U{i} = `{i}_${{N}}`;", f"const v{i}: U{i} = '{i}_10000';"]
    return "\n".join([*lines, "console.log(v0);", ""])


LANGUAGES = {
    "c": {
        "hello": '#include <stdio.h>\nint main(void) { puts("hello, world"); return 0; }\n',
        "stdin": "#include <stdio.h>\nint main(void) {\n    char line[64];\n"
        "    if (!fgets(line, sizeof line, stdin)) return 1;\n"
        '    printf("hi %s", line);\n    return 0;\n}\n',
        "error": '#include <stdio.h>\nint main(void) { fputs("boom\\n", stderr); return 3; }\n',
        "compile_error": ("int main(void) { return undefined_thing; }\n", "undeclared"),
        "warning": ("int main(void) { int unused; return 0; }\n", "unused variable"),
        "bomb": _c_include_bomb(),
    },
    "cpp": {
        "hello": '#include <iostream>\nint main() { std::cout << "hello, world" << std::endl; }\n',
        "stdin": "#include <iostream>\n#include <string>\nint main() {\n"
        '    std::string line;\n    std::getline(std::cin, line);\n    std::cout << "hi " << '
        'line << "\\n";\n}\n',
        "error": '#include <iostream>\nint main() {\n    std::cerr << "boom" << std::endl;\n'
        "    return 3;\n}\n",
        "compile_error": ("int main() { return undefined_thing; }\n", "was not declared"),
        "warning": ("int main() { int unused; return 0; }\n", "unused variable"),
        # 64 constant expressions of a million steps each: each stays under GCC's limit of
        # operations per evaluation (2**25; one expression past it fails in seconds), all of
        # them take minutes.
        "bomb": "constexpr long spin(long k) {\n    long s = 0;\n"
        "    for (long i = 0; i < 1000; ++i)\n"
        "        for (long j = 0; j < 1000; ++j) s += (i ^ j) + k;\n    return s;\n}\n"
        + "".join(f'static_assert(spin({k}) != 1, "never reached");\n' for k in range(64))
        + "int main() {}\n",
    },
    "go": {
        "hello": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello, world") }\n',
        "stdin": 'package main\n\nimport (\n\t"bufio"\n\t"fmt"\n\t"os"\n)\n\nfunc main() {\n'
        '\ts := bufio.NewScanner(os.Stdin)\n\ts.Scan()\n\tfmt.Println("hi " + s.Text())\n}\n',
        "error": 'package main\n\nimport (\n\t"fmt"\n\t"os"\n)\n\nfunc main() {\n'
        '\tfmt.Fprintln(os.Stderr, "boom")\n\tos.Exit(3)\n}\n',
        "compile_error": (
            "package main\n\nfunc main() { _ = undefinedThing }\n",
            "undefined: undefinedThing",
        ),
        "bomb": _go_type_bomb(),
    },
    "rust": {
        "hello": 'fn main() { println!("hello, world"); }\n',
        "stdin": "use std::io::BufRead;\n\nfn main() {\n    let mut line = String::new();\n"
        "    std::io::stdin().lock().read_line(&mut line).unwrap();\n"
        '    print!("hi {}", line);\n}\n',
        "error": 'fn main() {\n    eprintln!("boom");\n    std::process::exit(3);\n}\n',
        "compile_error": (
            "fn main() { let _ = undefined_thing; }\n",
            "cannot find value `undefined_thing`",
        ),
        "warning": ("fn main() { let unused = 1; }\n", "unused variable"),
        # Each expansion doubles: 2**40 macro expansions.
        "bomb": '#![recursion_limit = "256"]\nmacro_rules! bomb {\n    () => {};\n'
        "    ($h:tt $($t:tt)*) => { bomb!($($t)*); bomb!($($t)*); };\n}\n"
        "fn main() { bomb!(" + " x" * 40 + "); }\n",
    },
    "bash": {
        "hello": 'echo "hello, world"\n',
        "stdin": 'read -r line\necho "hi $line"\n',
        "error": "echo boom >&2\nexit 3\n",
    },
    "lua": {
        "hello": 'print("hello, world")\n',
        "stdin": 'local line = io.read("l")\nprint("hi " .. line)\n',
        "error": 'io.stderr:write("boom\\n")\nos.exit(3)\n',
    },
    "typescript": {
        "hello": 'const greeting: string = "hello, world";\nconsole.log(greeting);\n',
        "stdin": 'import * as fs from "fs";\n\nconst line: string = fs.readFileSync(0, "utf8")'
        '.split("\\n")[0];\nconsole.log(`hi ${line}`);\n',
        "error": 'console.error("boom");\nprocess.exit(3);\n',
        "compile_error": (
            'const n: number = "not a number";\nconsole.log(n);\n',
            "Type 'string' is not assignable to type 'number'",
        ),
        "bomb": _ts_union_bomb(),
    },
}


def _with(key):
    return [name for name, cases in LANGUAGES.items() if key in cases]


# Compilers on a busy two-core machine can take far longer than jp_fetch's default 20 s.
REQUEST_TIMEOUT_S = 300


@pytest.fixture
def run(jp_fetch):
    """POST code (as JSON, with any other fields) to /lang/<language>; return the Result."""

    async def run(language, code, **fields):
        response = await jp_fetch(
            "lang",
            language,
            method="POST",
            body=json.dumps({"code": code, **fields}),
            headers={"Content-Type": "application/json"},
            request_timeout=REQUEST_TIMEOUT_S,
        )
        assert response.code == 200
        return json.loads(response.body)

    return run


@pytest.mark.parametrize("language", list(LANGUAGES))
async def test_hello_world(run, language):
    result = await run(language, LANGUAGES[language]["hello"])
    assert (result["status"], result["exit_code"], result["stdout"]) == ("ok", 0, HELLO), result
    assert result["language"] == language


@pytest.mark.parametrize("language", list(LANGUAGES))
async def test_stdin(run, language):
    result = await run(language, LANGUAGES[language]["stdin"], stdin=STDIN)
    assert (result["status"], result["stdout"]) == ("ok", GREETING), result


@pytest.mark.parametrize("language", list(LANGUAGES))
async def test_runtime_error_reports_the_programs_exit_code(run, language):
    result = await run(language, LANGUAGES[language]["error"])
    assert (result["status"], result["exit_code"]) == ("error", 3), result
    assert result["stderr"].strip() == "boom"


@pytest.mark.parametrize("language", _with("compile_error"))
async def test_compile_error(run, language):
    code, fragment = LANGUAGES[language]["compile_error"]
    result = await run(language, code)
    assert result["status"] == "compile_error", result
    assert result["exit_code"] not in (None, 0)
    assert fragment in result["compile_output"]
    assert result["stdout"] == ""  # the run step was skipped


@pytest.mark.parametrize("language", _with("warning"))
async def test_warning_does_not_turn_success_into_an_error(run, language):
    code, fragment = LANGUAGES[language]["warning"]
    result = await run(language, code)
    assert (result["status"], result["exit_code"]) == ("ok", 0), result
    assert fragment in result["compile_output"]


@pytest.mark.parametrize("language", _with("bomb"))
async def test_compile_time_bomb_is_stopped_by_the_compile_time_limit(run, language):
    # Memory is generous here so that the time limit is the one that stops the compiler.
    limits = {"compile_timeout_s": 4, "compile_memory_mib": 1536}
    result = await run(language, LANGUAGES[language]["bomb"], limits=limits)
    assert result["status"] == "compile_error", result
    assert result["message"] == "the compiler hit its time limit (compile_timeout_s=4)"
    assert result["stdout"] == ""


# A C preprocessor expression of 2**24 terms: the parser's tree grows past 100 MiB at once.
C_MEMORY_BOMB = (
    "#define A0 1\n"
    + "".join(f"#define A{i} (A{i - 1} + A{i - 1})\n" for i in range(1, 25))
    + "int main(void) { return A24 == 0; }\n"
)
CPP_ALLOCATES_256_MIB = (
    "#include <cstdio>\n#include <vector>\nint main() {\n"
    "    std::vector<char> v(256 << 20, 1);\n"
    '    std::printf("%d\\n", v[12345]);\n}\n'
)


async def test_compiler_out_of_memory_is_a_clear_compile_error(run):
    limits = {"compile_memory_mib": 100, "memory_mib": 512, "compile_timeout_s": 60}
    result = await run("c", C_MEMORY_BOMB, limits=limits)
    assert result["status"] == "compile_error", result
    assert result["message"] == "the compiler ran out of memory (compile_memory_mib=100)"


async def test_run_memory_is_separate_from_compile_memory(run):
    # g++ needs more than 48 MiB for this program: it compiles under the compile limit, and the
    # program is then held to the run limit.
    limits = {"memory_mib": 48, "compile_memory_mib": 512}
    result = await run("cpp", CPP_ALLOCATES_256_MIB, limits=limits)
    assert (result["status"], result["exit_code"]) == ("oom", 137), result
    result = await run("cpp", CPP_ALLOCATES_256_MIB, limits={"memory_mib": 384})
    assert (result["status"], result["stdout"]) == ("ok", "1\n"), result


async def test_compile_output_larger_than_the_run_memory_is_refused_as_oom(run):
    # The 40 MiB binary in /work (tmpfs, charged as memory) cannot fit under an 8 MiB run limit.
    code = (
        "#include <stdio.h>\nstatic char big[40 << 20] = {1};\n"
        'int main(int argc, char **argv) { printf("%d\\n", big[argc * 12345]); return 0; }\n'
    )
    result = await run("c", code, limits={"memory_mib": 8})
    assert result["status"] == "oom", result
    assert result["message"].startswith("the run step does not fit in memory_mib=8: ")
    assert result["stdout"] == ""


async def test_languages_are_listed_with_their_version(jp_fetch):
    response = await jp_fetch("lang", request_timeout=REQUEST_TIMEOUT_S)
    listed = {lang["name"] for lang in json.loads(response.body)["languages"]}
    assert set(LANGUAGES) <= listed
    for name in LANGUAGES:
        # One language at a time: the version probes of a whole GET /lang at once may wait in the
        # queue past its timeout on a busy machine (and then show no version).
        response = await jp_fetch("lang", name, "info", request_timeout=REQUEST_TIMEOUT_S)
        info = json.loads(response.body)
        assert re.fullmatch(r"\d+(\.\d+)+", info["version"] or ""), info
        assert info["compiled"] is ("compile_error" in LANGUAGES[name])
        assert "compile_memory_mib" in info["limits"]


@pytest.mark.parametrize(
    ("alias", "language"),
    [("c++", "cpp"), ("golang", "go"), ("rs", "rust"), ("sh", "bash"), ("ts", "typescript")],
)
async def test_aliases(run, alias, language):
    result = await run(alias, LANGUAGES[language]["hello"])
    assert (result["language"], result["stdout"]) == (language, HELLO), result


async def test_compiled_language_after_its_version_probe(run, jp_fetch):
    # The version probe runs the language without its compile step; a warm container prepared
    # after it must still run the compile step and its protocol (no raw report in stderr).
    await jp_fetch("lang", "c", "info", request_timeout=REQUEST_TIMEOUT_S)

    async def c_warm():
        local = next(iter((await workers(jp_fetch)).values()))
        return local.get("pool", {}).get("c", {}).get("ready")

    await eventually(c_warm, 30)  # a warm container of c, if its pool makes one
    code, fragment = LANGUAGES["c"]["warning"]
    result = await run("c", code)
    assert (result["status"], result["exit_code"], result["stderr"]) == ("ok", 0, ""), result
    assert fragment in result["compile_output"]
