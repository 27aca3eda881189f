"""The daemon's life under systemd and the technician's tooling around it.

notify (READY / WATCHDOG / STATUS / STOPPING), logging (journald or stderr),
signals (ordered shutdown), and the host-side tools the technician's make
targets drive: provision, package, flash, remote.
"""
