#!/bin/sh
# Before `make` builds anything: is this machine able to?  One line per missing
# system package, naming it and how to install it; exit 1 if any is missing.
missing=0
need() { echo "missing system package: $1 — install it with: sudo apt-get install -y $1" >&2; missing=1; }

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    need python3
else
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
        || { echo "Python 3.10 or newer is needed, $PYTHON is $("$PYTHON" -V 2>&1)" >&2; missing=1; }
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || need python3-venv
fi
# EXTRA_PACKAGES: "package:path" pairs a target needs besides Python (make test: the broker).
for pair in $EXTRA_PACKAGES; do
    [ -e "${pair#*:}" ] || need "${pair%%:*}"
done
exit $missing
