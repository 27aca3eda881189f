"""The daemon's exit statuses that mean something to systemd (provisioning/systemd/oivis-appliance.service).

Invariant: every exit status the device runtime chooses on purpose is named here, and
none other than these.  0 is a clean stop (systemd leaves the unit down); 1 is the
command-line edge's status for an error (appliance.errors.command_line) and 130 its
Ctrl+C — both ordinary failures to systemd, not choices of the daemon.
"""

from __future__ import annotations

#: The appliance asking the service manager to start it again: a new configuration waits
#: for a restart, or one on trial was rolled back.  EX_TEMPFAIL from sysexits.h; the unit's
#: ``Restart=on-failure`` restarts on it like on any failure.
RESTART_STATUS = 75
