#!/bin/sh
# Before `make` builds anything: is this machine able to?  One line per missing system package,
# naming it and how to install it; exit 1 if any is missing.  As root where apt-get exists (CI on a
# fresh Debian machine) the missing packages are installed instead (apt-get update, then install),
# and checked again.
#   PYTHON                the interpreter the virtualenv is made from (3.10 or newer, with venv)
#   BUILD_SYSTEMD_PYTHON  1 (make setup on Linux): what systemd-python and pycups build with from
#                         PyPI — pkg-config, libsystemd's and libcups' headers, a C compiler, Python's headers
#   EXTRA_PACKAGES        "package:path" pairs a target needs besides Python (make test: the broker)
PYTHON=${PYTHON:-python3}

check() {
    missing=""
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        missing="$missing python3 python3-venv"
    else
        "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing="$missing python3-venv"
        if [ "$BUILD_SYSTEMD_PYTHON" = 1 ] && "$PYTHON" -c 'import sys; sys.exit(sys.platform != "linux")'; then
            command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
            if command -v pkg-config >/dev/null 2>&1; then
                pkg-config --exists libsystemd || missing="$missing libsystemd-dev"
            else
                [ -e /usr/include/systemd/sd-daemon.h ] || missing="$missing libsystemd-dev"
            fi
            [ -e /usr/include/cups/cups.h ] || missing="$missing libcups2-dev"   # pycups (printing)
            command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
            "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
                || missing="$missing python3-dev"
        fi
    fi
    for pair in $EXTRA_PACKAGES; do
        [ -e "${pair#*:}" ] || missing="$missing ${pair%%:*}"
    done
}

check
if [ -n "$missing" ] && [ "$(id -u 2>/dev/null)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing missing system packages:$missing (apt-get as root)" >&2
    # shellcheck disable=SC2086 # one word per package
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    check
fi
for package in $missing; do
    echo "missing system package: $package — install it with: sudo apt-get install -y $package" >&2
done
[ -z "$missing" ] || exit 1
if command -v "$PYTHON" >/dev/null 2>&1 && ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "Python 3.10 or newer is needed, $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi
exit 0
