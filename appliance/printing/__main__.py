"""``python -m appliance.printing setup``: the technician sets up the photo booth's printer queue in CUPS.

``setup --queue booth --uri URI --driver MODEL [--media 4x6] [--server SERVER] [--default]`` makes the
queue (or changes it), enabled, accepting jobs, with its media default, and the scheduler keeping no
photos in its spool (appliance.printing.setup); idempotent: run it again after a change.  ``devices``
and ``drivers [--match TEXT]`` list what CUPS offers for ``--uri`` and ``--driver`` (``lpinfo -v`` /
``lpinfo -m``).  Then set ``[printing] enabled = true`` (and ``queue``, ``server``, ``media`` as given).
"""

from __future__ import annotations

import argparse

from appliance.errors import command_line
from appliance.printing.setup import devices, drivers, set_up


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.printing", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup", help="make (idempotently) the queue, enabled and accepting, with its media "
                                "default, and the scheduler keeping no job files")
    setup.add_argument("--queue", required=True, help="the CUPS queue name ([printing] queue)")
    setup.add_argument("--uri", required=True, help="the printer's device URI (python -m appliance.printing devices, "
                       "or lpinfo -v)")
    setup.add_argument("--driver", required=True, help="the driver's name (python -m appliance.printing drivers, "
                       "or lpinfo -m)")
    setup.add_argument("--media", default="4x6", help="the queue's media default ([printing] media; default 4x6)")
    setup.add_argument("--default", action="store_true", help="also make it CUPS's default destination")
    listing = commands.add_parser("devices", help="the device URIs CUPS's backends find now (lpinfo -v)")
    models = commands.add_parser("drivers", help="the drivers CUPS has (lpinfo -m)")
    models.add_argument("--match", default="", help="only those whose make and model contain this (e.g. DNP)")
    for command in (setup, listing, models):
        command.add_argument("--server", help="the CUPS scheduler ([printing] server: socket path or host:port); "
                             "CUPS's own default when absent")
    args = parser.parse_args(argv)
    if args.command == "setup":
        for line in set_up(args.queue, args.uri, args.driver, args.media, args.server, args.default):
            print(line)
    else:
        found = devices(args.server) if args.command == "devices" else drivers(args.server, args.match)
        for name, about in found:
            print(f"{name}  {about}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
