# Braindrill sandbox bootstrap (POSIX sh), the command of every sandbox container, run as
# `timeout -s KILL <life> sh -c "$(cat bootstrap.sh)"` under the container's init.
# It waits for one framed payload on stdin -- a decimal byte count on a line, then that many bytes
# of tar -- so that a container can be started ahead of time and receive its code later, and so that
# no end-of-file is needed (TLS attach sockets cannot signal one). The tar holds the source files,
# .braindrill/stdin and .braindrill/job, a shell fragment written by the engine that sets
# BD_TIMEOUT, BD_EXIT_TOKEN, optionally BD_COMPILE, BD_COMPILE_TIMEOUT and BD_COMPILE_OUTPUT, and
# the run argv.
# A compile step reports on stderr, before any user program runs, one header line
# "\036braindrill-compile <exit code> <bytes>" followed by at most BD_COMPILE_OUTPUT bytes of output.
# After a successful compile it waits for one more byte on stdin, the engine's go-ahead: the engine
# first sets the run memory limit (the compile step runs under the compile memory limit).
# When the program has exited, one line "\036braindrill-exit <BD_EXIT_TOKEN> <exit code>" on stdout
# and on stderr tells the engine its result without waiting for the container to stop.
# The shell's own stderr goes to /dev/null (dash reports a child killed by a signal, "Killed");
# what the engine reads is written to fd 3, the container's stderr.
exec 3>&2 2>/dev/null
cd /work || exit 120
IFS= read -r size || exit 0
case "$size" in ''|*[!0-9]*) echo "braindrill: bad payload header" >&3; exit 121 ;; esac
head -c "$size" | tar -x -f - || { echo "braindrill: cannot unpack the payload" >&3; exit 122; }
. ./.braindrill/job
rm -f ./.braindrill/job
if [ -n "${BD_COMPILE:-}" ]; then
    (exec timeout -s KILL "$BD_COMPILE_TIMEOUT" sh -c "$BD_COMPILE" \
        </dev/null >./.braindrill/compile 2>&1 3>&-)
    rc=$?
    printf '\036braindrill-compile %s %s\n' "$rc" "$(wc -c <./.braindrill/compile)" >&3
    head -c "$BD_COMPILE_OUTPUT" ./.braindrill/compile >&3
    rm -f ./.braindrill/compile
    [ "$rc" -eq 0 ] || exit 0
    [ "$(head -c 1)" = g ] || exit 0
fi
# In a subshell: dash reports a signal death on the fd 2 of the command's redirections.
(exec timeout -s KILL "$BD_TIMEOUT" "$@" <./.braindrill/stdin 2>&3 3>&-)
rc=$?
report=$(printf '\036braindrill-exit %s %s' "$BD_EXIT_TOKEN" "$rc")
echo "$report"
echo "$report" >&3
exit "$rc"
