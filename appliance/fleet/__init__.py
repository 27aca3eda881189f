"""The fleet link: the device's side of the MQTT contract (shared/design/ARCHITECTURE.md).

events → spool (SQLite) → link (MQTT) → broker; desired state and commands
arrive over the same link.  Nothing here runs on the render loop's thread.
"""
