# Braindrill sandbox bootstrap (POSIX sh), the command of every sandbox container, run as
# `timeout -s KILL <life> sh -c "$(cat bootstrap.sh)"` under the container's init.
# It waits for one framed payload on stdin -- a decimal byte count on a line, then that many bytes
# of tar -- so that a container can be started ahead of time and receive its code later, and so that
# no end-of-file is needed (TLS attach sockets cannot signal one). The tar holds the source files,
# .braindrill/stdin and .braindrill/job, a shell fragment written by the engine that sets
# BD_TIMEOUT, optionally BD_COMPILE, BD_COMPILE_TIMEOUT and BD_COMPILE_OUTPUT, and the run argv.
# A compile step reports on stderr, before any user program runs, one header line
# "\036braindrill-compile <exit code> <bytes>" followed by at most BD_COMPILE_OUTPUT bytes of output.
# After a successful compile it waits for one more byte on stdin, the engine's go-ahead: the engine
# first sets the run memory limit (the compile step runs under the compile memory limit).
cd /work || exit 120
IFS= read -r size || exit 0
case "$size" in ''|*[!0-9]*) echo "braindrill: bad payload header" >&2; exit 121 ;; esac
head -c "$size" | tar -x -f - || { echo "braindrill: cannot unpack the payload" >&2; exit 122; }
. ./.braindrill/job
rm -f ./.braindrill/job
if [ -n "${BD_COMPILE:-}" ]; then
    timeout -s KILL "$BD_COMPILE_TIMEOUT" sh -c "$BD_COMPILE" </dev/null >./.braindrill/compile 2>&1
    rc=$?
    printf '\036braindrill-compile %s %s\n' "$rc" "$(wc -c <./.braindrill/compile)" >&2
    head -c "$BD_COMPILE_OUTPUT" ./.braindrill/compile >&2
    rm -f ./.braindrill/compile
    [ "$rc" -eq 0 ] || exit 0
    [ "$(head -c 1)" = g ] || exit 0
fi
exec timeout -s KILL "$BD_TIMEOUT" "$@" <./.braindrill/stdin
