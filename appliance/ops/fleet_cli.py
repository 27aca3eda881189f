"""The operator CLI's fleet subcommands: ``fleet status``, ``events tail``, ``command send``, ``ingest``.

Registered into ``python -m appliance.ops`` by ``add_fleet_commands``; the broker
options are the ones ``campaign push`` takes.  Handlers raise ApplianceError, which
the CLI's ``main`` turns into one line and exit status 1.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path

from appliance.errors import ApplianceError
from appliance.ops.eventbatch import events_filter
from appliance.ops.eventstore import DEFAULT_URL
from appliance.ops.fleet import DeviceView
from appliance.ops.ingest import DEFAULT_CLIENT_ID, DEFAULT_SESSION_EXPIRY_S
from appliance.ops.load import add_load_command
from appliance.ops.partitions import DEFAULT_RETAIN_MONTHS
from appliance.ops.push import BrokerOptions
from appliance.ops.registry import DEFAULT_HEALTH_PERIOD_S, SILENT_PERIODS, STATES
from appliance.ops.storebench import add_store_bench_command

INGEST_HELP = """\
Stores every event published on oivis/v1/+/events in a database, each once (the event id is the key),
acknowledging each message only after its rows are committed: a crash or Ctrl-C never loses an event,
and events published while ingest is down wait in its persistent broker session (--client-id,
--session-expiry). Each event is checked on its own: events a database could not hold (a seq beyond
64 bits, a NUL character, no time zone, oversized data) and messages that are no events batch are
acknowledged and kept in the database's quarantine table with the raw payload and the reason, and
the good events beside them are stored. The device is always the one in the topic. Ingest exits
(status 1) only when the database fails; what it had not acknowledged stays with the broker.
One process and SQLite suit a small fleet. For more, run several ingest workers sharing the load
through a shared subscription (--filter '$share/ingest/oivis/v1/+/events'), each with its own
certificate (ingest-1, ingest-2, ...: each CN gets the broker's ingest stanza) and so its own
client id, writing to PostgreSQL (--db postgresql://...). The broker sends each worker at most
--window unacknowledged messages; the rest wait on the broker. After each batch ingest publishes each
device's confirmed seq on oivis/v1/<device>/events/stored (retained): devices keep what they sent until
it is covered and send it again otherwise, so nothing the broker drops is lost; each ingest
certificate needs write access to that topic in operators.acl. Ingest also keeps the device registry
(the devices table: each device's latest status, state/reported and health, and when it was last seen)
that fleet status --db and campaign push --db read: it subscribes to oivis/v1/+/status and
oivis/v1/+/state/reported plainly (MQTT 5 sends no retained message to a shared subscription) and to
oivis/v1/+/health in the --filter's shared group; each ingest certificate needs read access to all three."""


STATUS_HELP = f"""\
With --db, lists every device of ingest's device registry (ingest stores each device's latest status,
state/reported and health), complete for any fleet size, with when it was last seen and whether it went
silent: status offline or lost, or no health for more than {SILENT_PERIODS} health periods (the period the
device announces, {DEFAULT_HEALTH_PERIOD_S:.0f} s when unknown). Without --db, lists the devices whose retained
status or report the broker sends within --window: a large fleet may not fit in it (a warning says so)."""


def add_fleet_commands(commands: argparse._SubParsersAction) -> None:
    fleet = commands.add_parser("fleet", help="read the fleet's state")
    fleet_actions = fleet.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = fleet_actions.add_parser("status", help="every device's status and campaign report: from ingest's "
                                      "device registry (--db), or the broker's retained messages", description=STATUS_HELP)
    status.add_argument("--db", metavar="URL", help="ingest's database (sqlite:///PATH or postgresql://...): every "
                        "registered device, with last seen and silent ones; no broker needed")
    BrokerOptions.add_arguments(status, broker_required=False)
    status.add_argument("--window", type=float, default=2.0, metavar="S",
                        help="without --db: seconds to collect (default 2)")
    status.add_argument("--site", metavar="S", help="only the devices whose id starts with S-")
    status.add_argument("--state", choices=(*STATES, "unknown", "silent"),
                        help="only the devices in this state (silent: with --db, see above)")
    status.add_argument("--json", action="store_true", help="a JSON array instead of the table")
    status.set_defaults(handler=_fleet_status)
    add_load_command(fleet_actions)
    add_store_bench_command(fleet_actions)

    events = commands.add_parser("events", help="watch the fleet's events")
    event_actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = event_actions.add_parser("tail", help="print events as they arrive, until Ctrl-C")
    BrokerOptions.add_arguments(tail)
    tail.add_argument("--device", metavar="ID", help="one device only")
    tail.add_argument("--json", action="store_true", help="JSON Lines: one event per line with device, historical")
    tail.add_argument("--count", type=int, metavar="N", help="stop after N events")
    tail.set_defaults(handler=_events_tail)

    command = commands.add_parser("command", help="send a command to a device")
    command_actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    send = command_actions.add_parser("send", help="send NAME (screenshot, reload, reboot, set-config) and print "
                                      "the reply; exit 1 when the device answers ok: false")
    send.add_argument("name", metavar="NAME")
    send.add_argument("--device", required=True, metavar="ID")
    BrokerOptions.add_arguments(send)
    send.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                      help="a command argument (repeatable); dots nest, values are JSON when they parse: "
                      "width=320, set.kiosk.attract_after_s=6, upload_url=https://...")
    send.add_argument("--out", type=Path, metavar="FILE", help="screenshot: write the PNG here")
    send.add_argument("--timeout", type=float, default=30.0, metavar="S", help="wait this long for the reply")
    send.add_argument("--expiry", type=int, default=60, metavar="S",
                      help="the broker drops the command if the device has not taken it within S seconds")
    send.add_argument("--cmd-id", metavar="UUID", help="re-send a command: the device repeats its stored reply "
                      "instead of running it again")
    send.set_defaults(handler=_command_send)

    ingest = commands.add_parser("ingest", help="store the fleet's events in SQLite or PostgreSQL, each once",
                                 description=INGEST_HELP)
    BrokerOptions.add_arguments(ingest)
    ingest.add_argument("--db", default=DEFAULT_URL, metavar="URL",
                        help="sqlite:///PATH (default ./oivis-events.db) or postgresql://USER@HOST/DB")
    ingest.add_argument("--client-id", metavar="ID",
                        help="the persistent session's client id, one per ingest worker (default: oivis-<the "
                        f"certificate's CN>, or {DEFAULT_CLIENT_ID} without one)")
    ingest.add_argument("--session-expiry", type=int, default=DEFAULT_SESSION_EXPIRY_S, metavar="S",
                        help="how long the broker keeps events for a stopped ingest (default a week)")
    ingest.add_argument("--filter", metavar="TOPIC", help="subscription (default: every device's events under "
                        "--topic-prefix; a $share/GROUP/... filter on clustered brokers)")
    ingest.add_argument("--batch", type=int, default=500, metavar="N", help="messages per transaction at most")
    ingest.add_argument("--window", type=int, default=1000, metavar="N",
                        help="messages the broker may send before they are acknowledged (default 1000)")
    ingest.add_argument("--progress", type=float, default=10.0, metavar="S", help="progress line every S seconds")
    ingest.add_argument("--idle-exit", type=float, metavar="S", help="exit after S seconds without a message")
    ingest.add_argument("--retain-months", type=int, default=DEFAULT_RETAIN_MONTHS, metavar="M",
                        help="keep events whose ts is in the last M months and the current one (default "
                        f"{DEFAULT_RETAIN_MONTHS}; 0 keeps all): PostgreSQL drops whole month partitions, hourly")
    ingest.set_defaults(handler=_ingest)


def _fleet_status(args: argparse.Namespace) -> int:
    from appliance.ops.fleet import table

    if args.db is not None:
        views, where = _registered(args), f"the device registry {args.db}"
    else:
        views, where = _retained(args), f"a retained status on {args.broker}"
    if args.json:  # a JSON array, one device a line (each line by the C encoder: 20,000 devices in a blink)
        print("[\n" + ",\n".join(json.dumps(view.document(), ensure_ascii=False) for view in views) + "\n]")
    elif views:
        print(table(views))
    else:
        matching = " ".join(f"--{name} {value}" for name, value in (("site", args.site), ("state", args.state))
                            if value is not None)
        print(f"no device{f' matching {matching}' if matching else ''} in {where}", file=sys.stderr)
    return 0


def _registered(args: argparse.Namespace) -> list[DeviceView]:
    from appliance.ops.eventstore import read_registry
    from appliance.ops.registry import select, utc_now

    return select(read_registry(args.db, health=args.json), utc_now(), args.site, args.state)


def _retained(args: argparse.Namespace) -> list[DeviceView]:
    from appliance.identity import in_site
    from appliance.ops.fleet import read_fleet
    from appliance.ops.push import OperatorClient

    if args.broker is None:
        raise ApplianceError("fleet status needs --db URL (ingest's device registry) or --broker HOST:PORT")
    if args.state == "silent":
        raise ApplianceError("--state silent needs --db: only the registry knows when a device was last heard")
    print(f"warning: without --db this lists the devices whose retained status the broker sends within "
          f"{args.window:g} s; the list may be incomplete for large fleets (use --db with ingest's database)",
          file=sys.stderr, flush=True)
    client = OperatorClient(BrokerOptions.from_arguments(args))
    try:
        views = read_fleet(client, args.window, args.topic_prefix)
    finally:
        client.close()
    return [view for view in views if (args.site is None or in_site(view.device, args.site))
            and (args.state is None or view.state == args.state)]


def _events_tail(args: argparse.Namespace) -> int:
    from appliance.ops.tail import tail

    if args.count is not None and args.count < 1:
        raise ApplianceError(f"--count {args.count}: at least 1")
    tail(BrokerOptions.from_arguments(args), args.device, args.count, args.json)
    return 0


def _command_send(args: argparse.Namespace) -> int:
    from appliance.ops.command import parse_arguments, send_command

    reply = send_command(BrokerOptions.from_arguments(args), args.device, args.name, parse_arguments(args.arg), args.timeout,
                         args.expiry, args.cmd_id)
    if args.out is not None and "png" in reply:
        try:
            args.out.write_bytes(base64.b64decode(reply.pop("png"), validate=True))
        except (binascii.Error, OSError) as exc:
            raise ApplianceError(f"cannot write the screenshot to {args.out}: {exc}") from exc
        reply["out"] = str(args.out)
    print(json.dumps(reply, ensure_ascii=False))
    if not reply.get("ok"):
        raise ApplianceError(f"{args.device} answered {args.name} with an error: {reply.get('error', 'no reason')}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from appliance.ops.eventstore import open_store
    from appliance.ops.ingest import Ingest, IngestSettings
    from appliance.ops.push import identity_name

    if not 1 <= args.window <= 65535:
        raise ApplianceError(f"--window {args.window}: 1 to 65535 messages (MQTT's Receive Maximum)")
    if not 0 <= args.retain_months <= 1200:
        raise ApplianceError(f"--retain-months {args.retain_months}: 0 (keep all) to 1200")
    options = BrokerOptions.from_arguments(args)
    name = identity_name(options.cert) if options.tls and options.cert else None
    client_id = args.client_id or (f"oivis-{name}" if name else DEFAULT_CLIENT_ID)
    settings = IngestSettings(args.filter or events_filter(None, args.topic_prefix), client_id, args.session_expiry,
                              args.batch, args.progress, args.idle_exit, args.window,
                              retain_months=args.retain_months)
    store = open_store(args.db)
    try:
        Ingest(store, options, settings).run()
    finally:
        store.close()
    return 0
