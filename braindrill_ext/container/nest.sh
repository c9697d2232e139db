# Braindrill nested sandbox setup (POSIX sh), run by runner.sh in a sandbox's new namespaces as
# `sh -c "$(cat nest.sh)" braindrill-sandbox <fstab> <number> <program...>`: uid 65534 in its own
# user namespace, with that namespace's capabilities (unshare --keep-caps), pid 1 of its own pid
# namespace, with a fresh /proc (unshare --mount-proc).
# It gives the sandbox what a sandbox container has -- its own hostname (the runner's, dash its
# number), the masked and read-only /proc paths of Docker's defaults and a fresh size-capped
# /work and /tmp (the runner's <fstab>) -- forbids new user namespaces inside, then drops every
# capability for good (bounding set included, no new privileges) and becomes the program under
# the container's init (which reaps orphans).
fail() {
    echo "braindrill: cannot set up the nested sandbox: $*" >&2
    exit 124
}
fstab=$1 number=$2
shift 2
# No user namespace can be made in here: the only way back to capabilities.
echo 0 >/proc/sys/user/max_user_namespaces || fail max_user_namespaces
read -r name </proc/sys/kernel/hostname && hostname "$name-$number" || fail hostname
mount -a -T "$fstab" || fail "the mounts of $fstab"
cd /work || fail /work
init=
[ -x /sbin/docker-init ] && init="/sbin/docker-init --"
exec setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- $init "$@"
