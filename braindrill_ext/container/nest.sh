# Braindrill nested sandbox setup (POSIX sh), run by runner.sh in a sandbox's new namespaces as
# `sh -c "$(cat nest.sh)" braindrill-sandbox <work MiB> <number> <program...>`: uid 65534 in its own user
# namespace, with that namespace's capabilities (unshare --keep-caps), pid 1 of its own pid
# namespace, with a fresh /proc (unshare --mount-proc).
# It gives the sandbox what a sandbox container has -- a fresh size-capped /work and /tmp, the
# masked and read-only /proc paths of Docker's defaults, its own hostname (the runner's, dash its
# number) -- forbids new user
# namespaces inside, then drops every capability for good (bounding set included, no new
# privileges) and becomes the program under the container's init (reaps orphans).
fail() {
    echo "braindrill: cannot set up the nested sandbox: $*" >&2
    exit 124
}
work=$1 number=$2
shift 2
mount -t tmpfs -o "rw,nosuid,nodev,size=${work}m,mode=0700" tmpfs /work || fail /work
mount -t tmpfs -o "rw,nosuid,nodev,size=${work}m,mode=1777" tmpfs /tmp || fail /tmp
# No user namespace can be made in here: the only way back to capabilities.
echo 0 >/proc/sys/user/max_user_namespaces || fail max_user_namespaces
for path in /proc/asound /proc/acpi /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list \
    /proc/timer_stats /proc/sched_debug /proc/scsi; do
    if [ -d "$path" ]; then
        mount -t tmpfs -o ro,nosuid,nodev,noexec tmpfs "$path" || fail "$path"
    elif [ -e "$path" ]; then
        mount --bind /dev/null "$path" || fail "$path"
    fi
done
for path in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
    [ -e "$path" ] || continue
    mount --bind "$path" "$path" && mount -o remount,bind,ro,nosuid,nodev,noexec "$path" ||
        fail "$path"
done
read -r name </proc/sys/kernel/hostname
hostname "$name-$number" || fail hostname
cd /work || fail /work
init=
[ -x /sbin/docker-init ] && init="/sbin/docker-init --"
exec setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- $init "$@"
