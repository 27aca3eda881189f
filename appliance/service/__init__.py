"""The daemon's life under systemd, and nothing else of the technician's.

notify (READY / WATCHDOG / STATUS / STOPPING), logging (journald or stderr),
signals (ordered shutdown), status (the exit statuses systemd acts on).  The
host-side tools the technician's make targets drive (provision, package, flash,
remote) live in appliance.tools: the device runtime never imports them.
"""
