# Braindrill slot runner (POSIX sh): the command of a runner container on a worker host whose
# sandbox kind is "nested" (braindrill_ext/runner.py), run as
# `timeout -s KILL <life> sh -c "$(cat runner.sh)" braindrill-runner <token> <work MiB> \
#  "$(cat nest.sh)" <program...>` under the container's init, as user 65534 with no capability,
# under the seccomp profile seccomp-nested.json.
# It runs one execution at a time, each in a fresh nested sandbox (nest.sh): new user, pid,
# mount, network, IPC and UTS namespaces, a fresh /proc, /work and /tmp. The sandbox is started
# ahead of its execution and waits for its payload on stdin, as a container does: <program...> is
# the bootstrap or the language's prestart, which read the payload and write the reports of
# protocol.py themselves. When it has ended (its pid namespace is gone, and with it every process
# it started), the runner checks it is clean -- as many processes and mounts as before the first
# one, no tmpfs page left (memory.stat's shmem) -- and reports on both streams, with the token
# the sandboxes never see:
#   "\036braindrill-runner <token> <exit status> <OOM kills during it> <clean: 1|0>"
# then starts the next sandbox; or exits when it is not clean (the engine replaces it) or when
# stdin has closed (exit code 123 of the sandbox: no payload came, the engine is gone).
exec 3>&2 2>/dev/null
token=$1 work=$2 nest=$3
shift 3
for tool in unshare setpriv; do
    command -v "$tool" >/dev/null || {
        echo "braindrill: this image cannot run nested sandboxes: it has no $tool (util-linux)" >&3
        exit 126
    }
done
# The cgroup's counters: v2's files, else v1's.
counter() {  # counter <v2 file> <v1 file> <key>
    for file in "$1" "$2"; do
        [ -r "$file" ] && { awk -v key="$3" '$1 == key { n = $2 } END { print n + 0 }' "$file"; return; }
    done
    echo 0
}
oom_kills() { counter /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control oom_kill; }
shmem() { counter /sys/fs/cgroup/memory.stat /sys/fs/cgroup/memory/memory.stat shmem; }
processes() { set -- /proc/[0-9]*; echo $#; }
mounts() { wc -l </proc/self/mountinfo; }
clean() {
    [ "$(processes)" -eq "$base_processes" ] && [ "$(mounts)" -eq "$base_mounts" ] &&
        [ "$(shmem)" -le "$base_shmem" ]
}
base_processes=$(processes) base_mounts=$(mounts) base_shmem=$(shmem) number=0
while :; do
    number=$((number + 1))
    before=$(oom_kills)
    unshare --user --map-user=65534 --map-group=65534 --keep-caps --fork --kill-child --pid \
        --mount-proc --mount --net --ipc --uts sh -c "$nest" braindrill-sandbox "$work" "$number" "$@" 2>&3
    rc=$?
    [ "$rc" -eq 123 ] && exit 0
    tries=0 ok=0  # a pid namespace and its mounts go a moment after its last process
    while [ "$tries" -lt 100 ]; do
        clean && { ok=1; break; }
        sleep 0.01
        tries=$((tries + 1))
    done
    report=$(printf '\036braindrill-runner %s %s %s %s' "$token" "$rc" "$(($(oom_kills) - before))" "$ok")
    echo "$report"
    echo "$report" >&3
    [ "$ok" -eq 1 ] || exit 125
done
