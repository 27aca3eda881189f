"""``python -m appliance.ops``: what an operator runs to sign, publish and serve campaigns.

The contract (shared/design/ARCHITECTURE.md): ``keygen --out DIR``; ``campaign push
CAMPAIGN_DIR --version N --key FILE --device ID --broker HOST:PORT [--no-tls]
[--asset-base-url URL]``; ``campaign serve CAMPAIGN_DIR --port N``. This is an edge:
ApplianceError becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.errors import ApplianceError, command_line
from appliance.ops.fleet_cli import add_fleet_commands
from appliance.ops.push import BrokerOptions

DISCOVERY_WINDOW_S = 2.0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _keygen(args: argparse.Namespace) -> int:
    from appliance.campaigns.signing import write_keypair

    private, public, key_id = write_keypair(args.out, args.force)
    print(f"wrote {private} (secret: keep it off the devices) and {public} (key id {key_id}); "
          f"list the .pub in [campaigns] trusted_keys on every device")
    return 0


def _build(args: argparse.Namespace) -> int:
    from appliance.ops.build import build, default_asset_base_url

    built = build(args.directory, args.asset_base_url or default_asset_base_url(), _progress)
    text = json.dumps(built.unsigned(), indent=2, ensure_ascii=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ApplianceError(f"cannot write {args.out}: {exc}") from exc
    _progress(f"wrote {args.out}: {len(built.body.campaigns)} campaign(s), {len(built.files)} asset(s)")
    return 0


def _push(args: argparse.Namespace) -> int:
    from appliance.boundedjson import INT64_MAX
    from appliance.campaigns.signing import load_private_key, sign_document
    from appliance.identity import check_device_id, in_site
    from appliance.ops.build import build, default_asset_base_url
    from appliance.ops.eventstore import read_registry
    from appliance.ops.push import (
        MAX_IN_FLIGHT,
        OperatorClient,
        discover_devices,
        never_seen,
        push_to,
        read_device_list,
    )

    if not 1 <= args.version <= INT64_MAX:
        raise ApplianceError(f"--version {args.version}: a version is a whole number from 1 to {INT64_MAX}")
    named = [check_device_id(device, "--device") for device in args.device or []]
    listed = read_device_list(args.devices) if args.devices and not named else None
    key = load_private_key(args.key)
    built = build(args.directory, args.asset_base_url or default_asset_base_url(), _progress)
    document = sign_document({"version": args.version, **built.unsigned()}, key)
    if args.db is not None and args.devices is not None:
        raise ApplianceError("--db and --devices both name the devices: give one")
    known_ids = [record.device for record in read_registry(args.db)] if args.db is not None else None
    options = BrokerOptions.from_arguments(args)
    client = OperatorClient(options, max_in_flight=MAX_IN_FLIGHT)
    try:
        if named:
            if args.force:
                unseen = []
            elif known_ids is not None:
                unseen = sorted(set(named) - set(known_ids))
            else:
                unseen = never_seen(client, named, DISCOVERY_WINDOW_S, options.prefix)
            if unseen:
                where = f"in the device registry {args.db}" if known_ids is not None else \
                    f"on {args.broker} (no retained status)"
                raise ApplianceError(f"never seen {where}: {', '.join(unseen)}; "
                                     "check the id, or add --force for a device that has not connected yet")
            devices = named
        else:
            if known_ids is None and listed is None:
                _progress(f"warning: without --db the devices are those whose retained status {args.broker} sends "
                          f"within {DISCOVERY_WINDOW_S:g} s; a large fleet may not fit (use --db with ingest's "
                          "database)")
            known = (listed if listed is not None else known_ids if known_ids is not None
                     else discover_devices(client, DISCOVERY_WINDOW_S, options.prefix))
            devices = [device for device in known if args.site is None or in_site(device, args.site)]
            if not devices:
                where = args.devices or (f"the device registry {args.db}" if args.db
                                         else f"retained statuses on {args.broker}")
                raise ApplianceError(f"no devices{f' of site {args.site}' if args.site else ''} in {where}")
        pushed = push_to(client, devices, document, _progress, options.prefix)
    finally:
        client.close()
    if pushed.failed:
        named_failures = "; ".join(f"{device}: {why}" for device, why in sorted(pushed.failed.items()))
        raise ApplianceError(f"version {args.version} reached {len(pushed.acknowledged)} of {len(devices)} "
                             f"device(s); not acknowledged by the broker: {named_failures}")
    print(f"version {args.version} signed with key {document['key_id']} and pushed to {len(devices)} device(s)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from appliance.ops.build import build
    from appliance.ops.serve import make_server

    built = build(args.directory, f"http://localhost:{args.port}", _progress)
    server = make_server(built.files, args.port, args.bind)
    host, port = server.server_address[:2]
    _progress(f"serving {len(built.files)} asset(s) of {args.directory} on http://{host or '0.0.0.0'}:{port}/ "
              f"(Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _star_pose(args: argparse.Namespace) -> int:
    from appliance.inference.backend import Inference
    from appliance.ops.star_pose import append, entry, find_star, image_path, legs_of, playable

    pose, size = find_star(args.photo, Inference(args.backend), progress=_progress)
    text = entry(pose, size, args.image or image_path(args.photo, args.out), args.name)
    if (problem := playable(pose, legs_of(args.out))) is not None:
        if not args.force:
            raise ApplianceError(f"{args.photo}: {problem} (nothing written; --force writes it anyway)")
        _progress(f"warning: {args.photo}: {problem}")
    if args.out is None:
        sys.stdout.write(text)
    else:
        append(args.out, text)
        _progress(f"appended the pose of {args.photo} to {args.out}")
    return 0


def _star_cutout(args: argparse.Namespace) -> int:
    from appliance.inference.backend import Inference
    from appliance.ops.star_cutout import star_cutout

    width, height = star_cutout(args.photo, args.out, Inference(args.backend))
    _progress(f"wrote {args.out}: the star cut out of {args.photo}, {width}x{height} with alpha")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m appliance.ops", description="OIVIS Edge operator tools")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="make an operator signing key pair")
    keygen.add_argument("--out", type=Path, required=True, metavar="DIR", help="writes DIR/operator.key and .pub")
    keygen.add_argument("--force", action="store_true", help="replace an existing key pair")
    keygen.set_defaults(handler=_keygen)

    campaign = commands.add_parser("campaign", help="build, push and serve campaigns")
    actions = campaign.add_subparsers(dest="action", required=True, metavar="ACTION")

    build = actions.add_parser("build", help="validate a campaign directory and write its unsigned document")
    build.add_argument("directory", type=Path, metavar="DIR")
    build.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")
    build.add_argument("--asset-base-url", metavar="URL", help="where devices download the assets from "
                       "(default: this machine's `campaign serve`)")
    build.set_defaults(handler=_build)

    push = actions.add_parser("push", help="sign a campaign and publish it as the devices' desired state")
    push.add_argument("directory", type=Path, metavar="CAMPAIGN_DIR")
    push.add_argument("--version", type=int, required=True, help="document version, higher than any pushed before")
    push.add_argument("--key", type=Path, required=True, metavar="FILE", help="operator signing key (keygen)")
    targets = push.add_mutually_exclusive_group(required=True)
    targets.add_argument("--device", action="append", metavar="ID", help="a device id (repeatable)")
    targets.add_argument("--site", metavar="S", help="every device whose id starts with S-")
    targets.add_argument("--all", action="store_true", help="every device")
    push.add_argument("--devices", type=Path, metavar="FILE", help="device ids for --site/--all, one per line "
                      "(default: the devices with a retained status on the broker)")
    push.add_argument("--db", metavar="URL", help="the devices from ingest's device registry (sqlite:///PATH or "
                      "postgresql://...): complete for any fleet size, where the broker's retained statuses "
                      "are read within a short window")
    push.add_argument("--force", action="store_true", help="with --device: push even to a device the broker has "
                      "never seen (no retained status), e.g. one provisioned but not connected yet")
    BrokerOptions.add_arguments(push)
    push.add_argument("--asset-base-url", metavar="URL", help="where devices download the assets from "
                      "(default: this machine's `campaign serve`)")
    push.set_defaults(handler=_push)

    serve = actions.add_parser("serve", help="serve a campaign's assets over HTTP (with Range)")
    serve.add_argument("directory", type=Path, metavar="CAMPAIGN_DIR")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--bind", default="", metavar="ADDR", help="address to listen on (default: all)")
    serve.set_defaults(handler=_serve)

    star = commands.add_parser("star-pose", help="the star's pose from a photo, as a [[pose.poses]] entry of a "
                               "campaign's pose game")
    star.add_argument("photo", type=Path, metavar="PHOTO", help="the star's photo or cut-out (PNG or JPEG)")
    star.add_argument("--out", type=Path, metavar="FILE", help="append the entry to FILE (a poses.toml, or the "
                      "campaign.toml itself) instead of writing it to stdout")
    star.add_argument("--image", metavar="PATH", help="the cut-out the game shows, relative to the bundle "
                      "(default: PHOTO, relative to FILE's folder when inside it)")
    star.add_argument("--name", default="", help="what the pose is called on screen")
    star.add_argument("--backend", default="auto", help="auto, litert or rknn")
    star.add_argument("--force", action="store_true", help="write a pose the game could not play (shoulders or, "
                      "with legs, hips not seen)")
    star.set_defaults(handler=_star_pose)

    cutout = commands.add_parser("star-cutout", help="cut the star out of a photo (a PNG with alpha for a "
                                 "campaign's [photo] star) with the appliance's own still segmentation")
    cutout.add_argument("photo", type=Path, metavar="PHOTO", help="the star's photo (PNG or JPEG)")
    cutout.add_argument("--out", type=Path, required=True, metavar="FILE", help="the cut-out to write (.png)")
    cutout.add_argument("--backend", default="auto", help="auto, litert or rknn")
    cutout.set_defaults(handler=_star_cutout)

    add_fleet_commands(commands)
    return parser


@command_line
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.handler(args)
