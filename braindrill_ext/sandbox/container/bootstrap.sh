# Braindrill sandbox bootstrap (POSIX sh), the command of every sandbox container, run as
# `timeout -s KILL <life> sh -c "$(cat bootstrap.sh)"` under the container's init.
# It waits for one framed payload on stdin -- a decimal byte count on a line, then that many bytes
# of tar -- so that a container can be started ahead of time and receive its code later, and so that
# no end-of-file is needed (TLS attach sockets cannot signal one). The tar holds the source files,
# .braindrill/stdin and .braindrill/job, a shell fragment written by the engine that sets
# BD_TIMEOUT, BD_EXIT_TOKEN, optionally BD_COMPILE, BD_COMPILE_TIMEOUT, BD_COMPILE_OUTPUT,
# BD_OUTPUT_TOKEN and BD_OUTPUT_MAX, and the run argv.
# A compile step reports on stderr, before any user program runs, one header line
# "\036braindrill-compile <exit code> <bytes>" followed by at most BD_COMPILE_OUTPUT bytes of output.
# After a successful compile it waits for one more byte on stdin, the engine's go-ahead: the engine
# first sets the run memory limit (the compile step runs under the compile memory limit).
# The program may leave files in $BRAINDRILL_DISPLAY (/work/.braindrill/display, made before it
# runs): when it has exited, each one named *.png, *.jpg, *.jpeg, *.svg, *.html, *.md, *.json or
# *.txt becomes, sorted by name, one output record on stdout (braindrill_ext/sandbox/protocol.py):
# "\036braindrill-output <BD_OUTPUT_TOKEN> <bytes>\n" then <bytes> of JSON, a display_data whose
# data is the file's content in base64 (the shell cannot check UTF-8 or escape JSON text); for
# every type but image/png and image/jpeg (base64 in .ipynb too) its metadata says
# {"braindrill": {"encoding": "base64"}}: the engine decodes it to text (application/json: parsed).
# A record over BD_OUTPUT_MAX bytes is left out, with a line on stderr. No BD_OUTPUT_TOKEN: no
# records (an engine that does not read them).
# State (a kernel's or session's, protocol.py): a header "<size> <state size>" sends a tar of an
# earlier execution's files first, unpacked before the payload (an archive that is not whole is
# said on stderr, what it held of use is kept). When the job sets BD_STATE_MAX, after the program
# (and its display files) the work directory's regular files but .braindrill/, the source file
# BD_SOURCE and what the compile step wrote go back as one record on stdout,
# "\036braindrill-state <BD_EXIT_TOKEN> <bytes>\n" then a USTAR tar of exactly <bytes> (cut or
# padded with zeros: a file that changes meanwhile cannot break the framing), smallest files
# first, as many as fit in BD_STATE_MAX bytes of tar; the others are named on stderr.
# When the program has exited, one line "\036braindrill-exit <BD_EXIT_TOKEN> <exit code>" on stdout
# and on stderr tells the engine its result without waiting for the container to stop.
# The shell's own stderr goes to /dev/null (dash reports a child killed by a signal, "Killed");
# what the engine reads is written to fd 3, the container's stderr.
exec 3>&2 2>/dev/null
cd /work || exit 120
IFS=' ' read -r size state || exit 123  # protocol.NO_PAYLOAD
case "$size:${state:-0}" in *[!0-9:]* | :*) echo "braindrill: bad payload header" >&3; exit 121 ;; esac
if [ "${state:-0}" -gt 0 ]; then  # what tar does not read (its padding) is drained
    head -c "$state" | { tar -x -f - || echo "braindrill: the state was not restored whole" >&3
        cat >/dev/null; }
fi
head -c "$size" | tar -x -f - || { echo "braindrill: cannot unpack the payload" >&3; exit 122; }
. ./.braindrill/job
rm -f ./.braindrill/job
BRAINDRILL_DISPLAY=${BRAINDRILL_DISPLAY:-/work/.braindrill/display}  # protocol.DISPLAY_DIR
export BRAINDRILL_DISPLAY
mkdir -p "$BRAINDRILL_DISPLAY"
# show <file> <mime type> <metadata>: one display_data record of the file, in base64
show() {
    size=$(wc -c <"$1") || return
    size=$((size))
    if [ "$size" -gt "$max" ]; then  # its record can only be larger
        echo "braindrill: the display file ${1##*/} of $size bytes was dropped (over the" \
            "per-output cap of $max bytes)" >&3
        return
    fi
    data=$(base64 <"$1" | tr -d '\n') || return
    before='{"output_type":"display_data","data":{"'$2'":"'
    after='"},"metadata":'$3'}'
    n=$((${#before} + ${#data} + ${#after}))
    if [ "$n" -gt "$max" ]; then
        echo "braindrill: an output of $n bytes was dropped (over the per-output cap of" \
            "$max bytes)" >&3
        return
    fi
    printf '\036braindrill-output %s %s\n%s%s%s' \
        "$BD_OUTPUT_TOKEN" "$n" "$before" "$data" "$after"  # protocol.OUTPUT_MARK
}
# only_matching: the "<size> <path>" lines whose path matches a pattern of .braindrill/only (a
# stateless payload's: the files a request asked back, not a state to keep), else all of them
only_matching() {
    if [ ! -f ./.braindrill/only ]; then cat; return; fi  # protocol.STATE_ONLY
    while IFS= read -r line; do
        while IFS= read -r pattern; do
            case ${line#* } in $pattern) printf '%s\n' "$line"; break ;; esac
        done <./.braindrill/only
    done
}
# save_state: the state record (above) on stdout; notes on fd 3
newline='
'
save_state() {
    gnu=$(tar --version 2>/dev/null | grep -q GNU && echo 1)
    # wc quotes a name with a newline (and -T takes one name a line): such files are not kept
    odd=$(find . -path ./.braindrill -prune -o -type f -name "*$newline*" -exec printf x \; | wc -c)
    [ "$odd" -eq 0 ] || echo "braindrill: not kept for the next execution: $odd file(s) whose" \
        "name holds a newline" >&3
    find . -path ./.braindrill -prune -o -type f -exec wc -c {} + | awk -v skip=./.braindrill/skip '
        BEGIN { while ((getline line < skip) > 0) skipped[line] = 1 }
        { size = $1; sub(/^ *[0-9]+ /, "") }
        substr($0, 1, 2) == "./" && !($0 in skipped) { print size, substr($0, 3) }' |
        only_matching | sort -n | awk -v max="$BD_STATE_MAX" -v keep=./.braindrill/keep -v gnu="$gnu" '
        function fits(path, n, i) {  # USTAR: a name of 100 bytes, after a prefix of 155 (GNU)
            n = length(path)
            if (n <= 100) return 1
            if (!gnu) return 0  # busybox writes a longer name as a GNU extension: more bytes
            for (i = 1; i <= n && i <= 156; i++)
                if (substr(path, i, 1) == "/" && n - i <= 100) return 1
            return 0
        }
        BEGIN { total = 1024; printf "" > keep }
        { size = $1; path = $0; sub(/^[0-9]+ /, "", path); cost = 512 + int((size + 511) / 512) * 512 }
        fits(path) && total + cost <= max { total += cost; print path > keep; next }
        { dropped = dropped (dropped == "" ? "" : ", ") path " (" size " bytes)" }
        END {
            if (dropped != "") printf "braindrill: not kept for the next execution (over the " \
                "state cap of %d bytes, or a name too long): %s\n", max, dropped > "/dev/stderr"
            print total
        }' 2>&3 >./.braindrill/state-size
    total=$(cat ./.braindrill/state-size)
    printf '\036braindrill-state %s %s\n' "$BD_EXIT_TOKEN" "$total"  # protocol.STATE_MARK
    if [ -n "$gnu" ]; then
        { tar -c -f - --format=ustar -b 1 --verbatim-files-from -T ./.braindrill/keep
            cat /dev/zero; } | head -c "$total"
    else  # busybox (Alpine images; no -T): the names as arguments, its padding is cut
        set --
        while IFS= read -r path; do set -- "$@" "$path"; done <./.braindrill/keep
        { [ $# -eq 0 ] || tar -c -f - -- "$@"; cat /dev/zero; } | head -c "$total"
    fi
}
if [ -n "${BD_STATE_MAX:-}" ]; then
    printf './%s\n' "$BD_SOURCE" >./.braindrill/skip
    touch ./.braindrill/stamp  # what the compile step writes is newer: built again, not kept
fi
if [ -n "${BD_COMPILE:-}" ]; then
    (exec timeout -s KILL "$BD_COMPILE_TIMEOUT" sh -c "$BD_COMPILE" \
        </dev/null >./.braindrill/compile 2>&1 3>&-)
    rc=$?
    printf '\036braindrill-compile %s %s\n' \
        "$rc" "$(wc -c <./.braindrill/compile)" >&3  # protocol.COMPILE_MARK
    head -c "$BD_COMPILE_OUTPUT" ./.braindrill/compile >&3
    rm -f ./.braindrill/compile
    [ "$rc" -eq 0 ] || exit 0
    [ -z "${BD_STATE_MAX:-}" ] ||
        find . -path ./.braindrill -prune -o -type f -newer ./.braindrill/stamp -print >>./.braindrill/skip
    [ "$(head -c 1)" = g ] || exit 0  # protocol.GO
fi
# In a subshell: dash reports a signal death on the fd 2 of the command's redirections.
(exec timeout -s KILL "$BD_TIMEOUT" "$@" <./.braindrill/stdin 2>&3 3>&-)
rc=$?
if [ -n "${BD_OUTPUT_TOKEN:-}" ]; then
    max=${BD_OUTPUT_MAX:-1048576}
    for file in "$BRAINDRILL_DISPLAY"/*; do
        [ -f "$file" ] && [ -r "$file" ] || continue
        case $(printf '%s' "${file##*.}" | tr 'A-Z' 'a-z') in
            png) show "$file" image/png '{}' ;;
            jpg | jpeg) show "$file" image/jpeg '{}' ;;
            svg) show "$file" image/svg+xml '{"braindrill":{"encoding":"base64"}}' ;;
            html) show "$file" text/html '{"braindrill":{"encoding":"base64"}}' ;;
            md) show "$file" text/markdown '{"braindrill":{"encoding":"base64"}}' ;;
            json) show "$file" application/json '{"braindrill":{"encoding":"base64"}}' ;;
            txt) show "$file" text/plain '{"braindrill":{"encoding":"base64"}}' ;;
        esac
    done
fi
[ -z "${BD_STATE_MAX:-}" ] || save_state
report=$(printf '\036braindrill-exit %s %s' "$BD_EXIT_TOKEN" "$rc")  # protocol.EXIT_MARK
echo "$report"
echo "$report" >&3
exit "$rc"
