#!/bin/sh
# `make check-arm64`: the board's .deb installed and run on arm64, here, under qemu-user emulation.
#
# A Debian 12 arm64 root is bootstrapped with mmdebstrap from this machine's own apt sources (its
# Debian bookworm entries) with python3 and the packages the .deb takes from Debian, and cached as a
# tarball in $ARM64_DIR (a second run reuses it; a changed package list or source makes a new one).
# Each run unpacks it afresh, installs the .deb with apt (postinst builds /opt/oivis/venv from the
# bundled wheels, emulated), runs `oivis analyze --json` on the devset stills inside and
# `python -m appliance analyze --json` here, and requires the same results
# (python -m appliance.tools.arm64check compare).
#
# Invariants: every command in the root runs with a clean environment (env -i: no PIP_* or proxy
# settings of this machine leak in); /proc, /sys and /dev are mounted for it in a private mount namespace
# (unshare), so nothing stays mounted under $ARM64_DIR when a step ends, fails or times out; each
# step has a time limit and says which one ran out.  qemu-user before 8.2 shows the guest this
# machine's x86 /proc/cpuinfo, on which LiteRT's XNNPACK crashes: there the root's /proc/cpuinfo is
# a Cortex-A72's (cortex-a72.cpuinfo beside this script, one block per CPU here), as on a Raspberry Pi 4.
#
# Needs root (mount, chroot, binfmt_misc), and qemu-user-static, binfmt-support and mmdebstrap
# (the Makefile has check-system.sh name or install them).
#   DEB                 the arm64 .deb (make package ARCH=arm64)
#   MEDIA               the devset directory;  ARM64_MEDIA  the stills compared, file names in it
#   PY                  this machine's appliance interpreter (.venv/bin/python)
#   ARM64_DIR           the cache and work directory (.arm64)
#   ARM64_BOOTSTRAP_MINUTES, ARM64_INSTALL_MINUTES, ARM64_ANALYZE_MINUTES   the steps' time limits
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ARM64_DIR=${ARM64_DIR:-.arm64}
ROOT="$ARM64_DIR/root"
GUEST_MEDIA=/var/tmp/oivis-arm64-media
CLEAN_ENV="env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

say() { echo "arm64: $*"; }
fail() { echo "arm64: FAILED: $*" >&2; exit 1; }

# The phases' wall times, printed at the end (and on failure, up to the failed one).
TIMES=""
phase_done() { TIMES="$TIMES$(printf '%-60s %5s s' "$1" "$2")\n"; }
print_times() { [ -z "$TIMES" ] || { say "wall time per phase:"; printf '%b' "$TIMES" | sed 's/^/  /'; }; }

# run_step LABEL MINUTES STEP LIMIT: this script's STEP (below) in its own process group under `timeout`,
# with a line every minute while it runs; a step that fails or runs out of time ends the check, naming
# LIMIT (the variable that raises it).  Ctrl+C or a TERM ends the step too (timeout passes TERM on to
# its whole group: the emulated processes in the root with it).
run_step() {
    label=$1 minutes=$2 step=$3
    start=$(date +%s) last=$start
    say "$label (at most $minutes min) ..."
    pid=""
    trap '[ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null; wait "$pid"; }; fail "$label: interrupted"' INT TERM HUP
    timeout --kill-after=30 "$((minutes * 60))" sh "$0" __step "$step" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        now=$(date +%s)
        if [ $((now - last)) -ge 60 ]; then
            say "  $label: still running, $((now - start)) s"
            last=$now
        fi
    done
    wait "$pid"
    status=$?
    trap - INT TERM HUP
    seconds=$(($(date +%s) - start))
    phase_done "$label" "$seconds"
    if [ "$status" = 124 ] || [ "$status" = 137 ]; then
        print_times
        fail "$label ran out of its $minutes min or was killed (out of memory?) after $seconds s (a busy machine? raise the limit, e.g. make check-arm64 $4=$((minutes * 2)))"
    elif [ "$status" != 0 ]; then
        print_times
        fail "$label (exit status $status; its output is above)"
    fi
    say "$label: done in $seconds s"
}

# in_root COMMAND...: COMMAND in the arm64 root, clean environment, /proc, /sys (the CPU lists XNNPACK's
# cpuinfo reads) and /dev mounted in a private mount namespace (gone with the command), and the Cortex-A72
# cpuinfo where qemu would show the host's.
in_root() {
    unshare --mount --propagation private sh -c '
        root=$1; cpuinfo=$2; shift 2
        mount -t proc proc "$root/proc" && mount -t sysfs -o ro sysfs "$root/sys" &&
            mount --rbind /dev "$root/dev" || exit 1
        if [ -n "$cpuinfo" ]; then mount --bind "$cpuinfo" "$root/proc/cpuinfo" || exit 1; fi
        exec chroot "$root" "$@"' in_root "$ROOT" "$(cpuinfo_file)" $CLEAN_ENV "$@"
}

# The qemu-aarch64 version as MAJOR.MINOR.
qemu_version() { qemu-aarch64-static --version | sed -n 's/.*version \([0-9]*\.[0-9]*\).*/\1/p' | head -n 1; }

# The cpuinfo to show the guest, "" with qemu 8.2 or newer: cortex-a72.cpuinfo's block for each of this
# machine's processors (nproc --all: the count /sys/devices/system/cpu/present gives), written into $ARM64_DIR.
cpuinfo_file() {
    version=$(qemu_version)
    major=${version%%.*} minor=${version#*.}
    if [ "$major" -gt 8 ] || { [ "$major" = 8 ] && [ "$minor" -ge 2 ]; }; then
        echo ""
        return
    fi
    file="$(realpath "$ARM64_DIR")/cpuinfo"
    processor=0
    : > "$file"
    while [ "$processor" -lt "$(nproc --all)" ]; do
        sed "s/^processor.*/processor\t: $processor/" "$HERE/cortex-a72.cpuinfo" >> "$file"
        echo >> "$file"
        processor=$((processor + 1))
    done
    echo "$file"
}

# This machine's Debian bookworm entries, as sources.list lines (ARM64_SOURCES: a sources.list to use instead).
bookworm_sources() {
    if [ -n "${ARM64_SOURCES:-}" ]; then
        grep -v '^[[:space:]]*#' "$ARM64_SOURCES"
        return
    fi
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' 'Origin: Debian' |
        awk '$2 ~ /^bookworm(-|$)/' | sort -u |
        awk '{ key = $1 " " $2; if (!(key in parts)) order[n++] = key; parts[key] = parts[key] " " $3 }
             END { for (i = 0; i < n; i++) print "deb " order[i] parts[order[i]] }'
}

# --- The steps, each run by run_step as `check.sh __step NAME` (same environment) -------------------------

step_bootstrap() {
    set -e
    rm -f "$TARBALL.part"
    # mmdebstrap reads no apt.conf of this machine: its Valid-Until choice (a snapshot mirror) is passed on.
    eval "$(apt-config shell VALID Acquire::Check-Valid-Until)"
    mmdebstrap --architectures=arm64 --variant=apt --include="$INCLUDE" --format=tar \
        ${VALID:+--aptopt="Acquire::Check-Valid-Until \"$VALID\""} \
        bookworm "$TARBALL.part" "$SOURCES_FILE"
    mv "$TARBALL.part" "$TARBALL"
}

step_install() {
    set -e
    in_root apt-get install --yes --no-install-recommends -o Dpkg::Use-Pty=0 "/tmp/$(basename "$DEB")"
}

step_analyze_arm64() {
    set -e
    # shellcheck disable=SC2086 # one word per image
    in_root /usr/bin/oivis analyze $(for image in $ARM64_MEDIA; do echo "$GUEST_MEDIA/$image"; done) --json \
        > "$ARM64_DIR/arm64.jsonl"
}

step_analyze_native() {
    set -e
    # shellcheck disable=SC2086
    "$PY" -m appliance analyze $(for image in $ARM64_MEDIA; do echo "$MEDIA/$image"; done) --json \
        > "$ARM64_DIR/native.jsonl"
}

if [ "${1:-}" = __step ]; then
    "step_$2"
    exit $?
fi

# --- The check ----------------------------------------------------------------------------------------------

: "${DEB:?DEB=path/to/oivis-appliance_VERSION_arm64.deb}" "${MEDIA:?MEDIA=path/to/devset}" "${PY:?PY=.venv/bin/python}"
: "${ARM64_MEDIA:?ARM64_MEDIA=\"a.png b.jpg\" (file names in MEDIA)}"
[ "$(id -u)" = 0 ] || fail "needs root (binfmt_misc, mmdebstrap, mount, chroot): sudo make check-arm64"
[ -f "$DEB" ] || fail "no package $DEB: make package ARCH=arm64"
for image in $ARM64_MEDIA; do
    [ -f "$MEDIA/$image" ] || fail "no devset image $MEDIA/$image: set OIVIS_TEST_MEDIA=path/to/devset"
done
CHECK_START=$(date +%s)
mkdir -p "$ARM64_DIR"
case "$(realpath "$ARM64_DIR")" in
    /|/root|/home|"$(realpath "${HOME:-/root}")") fail "ARM64_DIR=$ARM64_DIR is not a directory of its own (its root/ is removed on every run)" ;;
esac

# qemu-aarch64 through binfmt_misc (flag F: the interpreter is opened now, so it works inside a chroot).
start=$(date +%s)
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
        fail "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc (modprobe binfmt_misc; in a container, mount it on the host)"
fi
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 || fail "cannot enable qemu-aarch64 in binfmt_misc: update-binfmts --enable qemu-aarch64"
fi
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
    fail "qemu-aarch64 is not enabled in /proc/sys/fs/binfmt_misc (apt-get install --reinstall qemu-user-static)"
QEMU=$(qemu_version)
if [ -n "$(cpuinfo_file)" ]; then
    say "qemu-aarch64 $QEMU (< 8.2: the root sees a Cortex-A72's /proc/cpuinfo, not this machine's)"
else
    say "qemu-aarch64 $QEMU (shows the guest its own /proc/cpuinfo)"
fi
phase_done "binfmt qemu-aarch64" $(($(date +%s) - start))

# The bootstrapped root, cached by what makes it: packages, sources, architecture, suite.
INCLUDE=$("$PY" -m appliance.tools.arm64check include) || fail "cannot read the Debian packages (requirements/debian.txt)"
SOURCES_FILE="$ARM64_DIR/bookworm.list"
bookworm_sources > "$SOURCES_FILE.new"
[ -s "$SOURCES_FILE.new" ] || fail "this machine's apt sources have no Debian bookworm entry (apt-get update first?); \
add one (deb http://deb.debian.org/debian bookworm main) or give ARM64_SOURCES=path/to/sources.list"
mv "$SOURCES_FILE.new" "$SOURCES_FILE"
KEY=$(printf 'arm64 bookworm apt %s\n' "$INCLUDE" | cat - "$SOURCES_FILE" | sha256sum | cut -c1-12)
TARBALL="$ARM64_DIR/bookworm-arm64-$KEY.tar"
export INCLUDE SOURCES_FILE TARBALL DEB MEDIA PY ARM64_MEDIA ARM64_DIR
if [ -f "$TARBALL" ]; then
    say "the bookworm arm64 root is cached: $TARBALL"
else
    say "bootstrapping a bookworm arm64 root with $INCLUDE from $(awk '{print $2 " " $3}' "$SOURCES_FILE" | paste -sd, | sed 's/,/, /g')"
    for old in "$ARM64_DIR"/bookworm-arm64-*.tar; do [ -e "$old" ] && rm -f "$old"; done
    run_step "bootstrap (mmdebstrap, emulated)" "${ARM64_BOOTSTRAP_MINUTES:-40}" bootstrap ARM64_BOOTSTRAP_MINUTES
fi

# A fresh root from the tarball for every run: the package is installed into a root that never had it.
start=$(date +%s)
if grep -q " $(realpath "$ARM64_DIR")/root[/ ]" /proc/self/mountinfo; then
    fail "something is mounted under $ROOT (left by hand?): umount -R $ROOT first"
fi
rm -rf "$ROOT" && mkdir -p "$ROOT" && tar -xf "$TARBALL" -C "$ROOT" || fail "cannot unpack $TARBALL into $ROOT"
cp "$DEB" "$ROOT/tmp/" && mkdir -p "$ROOT$GUEST_MEDIA" || fail "cannot copy into $ROOT"
for image in $ARM64_MEDIA; do cp "$MEDIA/$image" "$ROOT$GUEST_MEDIA/"; done
phase_done "fresh root from the cache" $(($(date +%s) - start))

run_step "install the .deb (apt; postinst builds the venv, emulated)" "${ARM64_INSTALL_MINUTES:-40}" install ARM64_INSTALL_MINUTES
run_step "analyze $(echo "$ARM64_MEDIA" | wc -w) stills on arm64 (emulated)" "${ARM64_ANALYZE_MINUTES:-30}" analyze_arm64 ARM64_ANALYZE_MINUTES
run_step "analyze them natively" "${ARM64_ANALYZE_MINUTES:-30}" analyze_native ARM64_ANALYZE_MINUTES

start=$(date +%s)
"$PY" -m appliance.tools.arm64check compare "$ARM64_DIR/native.jsonl" "$ARM64_DIR/arm64.jsonl"
status=$?
phase_done "compare" $(($(date +%s) - start))
phase_done "total" $(($(date +%s) - CHECK_START))
print_times
[ "$status" = 0 ] || fail "the arm64 results differ from the native ones (lines above; outputs in $ARM64_DIR/*.jsonl)"
say "PASSED: the arm64 .deb installs in a bookworm arm64 root and analyzes like this machine (qemu-aarch64 $QEMU)"
