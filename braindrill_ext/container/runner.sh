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
# one, no more tmpfs pages (memory.stat's shmem) -- and reports on both streams, with the token
# the sandboxes never see:
#   "\036braindrill-runner <token> <exit status> <OOM kills during it> <clean: 1|0> <stopped: 1|0>"
# then starts the next sandbox; or exits when it is not clean (the engine replaces it) or when
# stdin has closed (exit code 123 of the sandbox: no payload came, the engine is gone).
# The engine's stop (a deadline, an output flood: `docker kill -s HUP` for an odd-numbered
# sandbox, `-s INT` for an even-numbered one) kills the running sandbox, which the report then
# says ("stopped"); the runner goes on. A stop that arrives after its sandbox ended by itself has
# the other signal than the next sandbox's, and is ignored.
# Between two sandboxes it runs no other program (shell builtins only): a sandbox costs unshare,
# one mount and the program.
exec 3>&2 2>/dev/null
token=$1 work=$2 nest=$3
shift 3
for tool in unshare setpriv mount; do
    command -v "$tool" >/dev/null || {
        echo "braindrill: this image cannot run nested sandboxes: it has no $tool (util-linux)" >&3
        exit 126
    }
done
# The sandbox's mounts (nest.sh mounts them all with one `mount -a`): Docker's masked paths on
# /proc (those this kernel has), its read-only paths, then a fresh /work and /tmp.
fstab=/tmp/.braindrill-fstab
for path in /proc/asound /proc/acpi /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list \
    /proc/timer_stats /proc/sched_debug /proc/scsi; do
    if [ -d "$path" ]; then
        echo "braindrill-mask $path tmpfs ro,nosuid,nodev,noexec 0 0"
    elif [ -e "$path" ]; then
        echo "/dev/null $path none bind 0 0"
    fi
done >"$fstab"
for path in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
    [ -e "$path" ] && echo "$path $path none bind,ro,nosuid,nodev,noexec 0 0"
done >>"$fstab"
echo "braindrill-work /work tmpfs rw,nosuid,nodev,size=${work}m,mode=0700 0 0" >>"$fstab"
echo "braindrill-tmp /tmp tmpfs rw,nosuid,nodev,size=${work}m,mode=1777 0 0" >>"$fstab"
# The cgroup's counters, v2's files else v1's, into $n; counts, into $n.
counter() {  # counter <key> <v2 file> <v1 file>
    n=0
    for file in "$2" "$3"; do
        [ -r "$file" ] || continue
        while read -r key value; do [ "$key" = "$1" ] && n=$value; done <"$file"
        return
    done
}
oom_kills() { counter oom_kill /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; }
shmem() { counter shmem /sys/fs/cgroup/memory.stat /sys/fs/cgroup/memory/memory.stat; }
processes() { set -- /proc/[0-9]*; n=$#; }
mounts() { n=0; while read -r _; do n=$((n + 1)); done </proc/self/mountinfo; }
clean() {
    processes; [ "$n" -eq "$base_processes" ] || return
    mounts; [ "$n" -eq "$base_mounts" ] || return
    shmem; [ "$n" -le "$base_shmem" ]
}
exec 4<&0  # the attach stream, for the sandboxes (a background job's stdin would be /dev/null)
pid= stopped=0
number=0
stop() {  # stop <parity of the sandbox the signal is for>
    [ $((number % 2)) -eq "$1" ] || return 0
    stopped=1
    [ -z "$pid" ] || kill -KILL "$pid"
}
trap 'stop 1' HUP
trap 'stop 0' INT
processes; base_processes=$n
mounts; base_mounts=$n
shmem; base_shmem=$n
while :; do
    number=$((number + 1))
    oom_kills; before=$n
    stopped=0
    unshare --user --map-user=65534 --map-group=65534 --keep-caps --fork --kill-child --pid \
        --mount-proc --mount --net --ipc --uts \
        sh -c "$nest" braindrill-sandbox "$fstab" "$number" "$@" <&4 2>&3 3>&- 4>&- &
    pid=$!
    while :; do  # a trapped signal ends `wait` early: wait again for the status
        wait "$pid"
        rc=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    pid=
    [ "$rc" -eq 123 ] && exit 0
    tries=0 ok=0  # a pid namespace and its mounts go a moment after its last process
    while [ "$tries" -lt 100 ]; do
        clean && { ok=1; break; }
        sleep 0.01
        tries=$((tries + 1))
    done
    oom_kills
    for fd in 1 3; do
        printf '\036braindrill-runner %s %s %s %s %s\n' "$token" "$rc" "$((n - before))" "$ok" \
            "$stopped" >&"$fd"
    done
    [ "$ok" -eq 1 ] || exit 125
done
