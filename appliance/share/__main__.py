"""``python -m appliance.share lifecycle``: the operator sets the bucket's rule that deletes shared photos.

The devices' own credentials are scoped to ``photos/<device_id>/`` and cannot (and must not) change
the bucket, so this runs with the operator's keys, from the operator's machine: ``--credentials-dir``
holds ``s3-access-key`` and ``s3-secret-key`` of an identity allowed to put the bucket's lifecycle.
``--link-expiry-h`` is the longest ``[share] link_expiry_h`` of the devices using the bucket: the rule
keeps photos that many hours rounded up to whole days.  Idempotent: run it again after a change.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.errors import command_line
from appliance.share.credentials import load_keys
from appliance.share.store import Store


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.share", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lifecycle = commands.add_parser("lifecycle", help="set (idempotently) the rule expiring photos/ after the "
                                    "links' expiry, in whole days")
    lifecycle.add_argument("--endpoint-url", help="the storage's S3 endpoint ([share] endpoint_url); AWS S3 "
                           "when absent")
    lifecycle.add_argument("--bucket", required=True, help="the bucket ([share] bucket)")
    lifecycle.add_argument("--region", default="us-east-1", help="the bucket's region ([share] region)")
    lifecycle.add_argument("--link-expiry-h", type=int, default=24,
                           help="the longest [share] link_expiry_h of the devices (default 24)")
    lifecycle.add_argument("--credentials-dir", type=Path, required=True,
                           help="directory with the operator's s3-access-key and s3-secret-key")
    args = parser.parse_args(argv)
    if not 1 <= args.link_expiry_h <= 168:
        parser.error(f"--link-expiry-h {args.link_expiry_h}: links last 1 to 168 hours")
    keys = load_keys(args.credentials_dir, environ={})  # the operator's keys, not a service's
    store = Store(args.endpoint_url, args.bucket, args.region, keys, device_id="-")
    rule, changed = store.ensure_lifecycle(args.link_expiry_h)
    print(f"{args.bucket}: rule {rule['ID']} deletes photos/ after {rule['Expiration']['Days']} day(s) "
          f"({'set' if changed else 'already set'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
