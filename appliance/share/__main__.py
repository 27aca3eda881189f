"""``python -m appliance.share lifecycle``: the operator sets the bucket's rule that deletes shared photos.

The device's own credentials are scoped to ``photos/<device_id>/`` and cannot (and must not) change
the bucket, so this runs with the operator's keys: ``--credentials-dir`` holds ``s3-access-key`` and
``s3-secret-key`` of an identity allowed to put the bucket's lifecycle.  The endpoint, bucket, region
and ``link_expiry_h`` come from the device configuration's ``[share]``, so the rule matches the links
the devices hand out.  Idempotent: run it again after changing ``link_expiry_h``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.config import load_config
from appliance.errors import ApplianceError, command_line
from appliance.share.credentials import load_keys
from appliance.share.store import Store


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.share", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lifecycle = commands.add_parser("lifecycle", help="set (idempotently) the rule expiring photos/ after the "
                                    "links' expiry, in whole days")
    lifecycle.add_argument("--config", type=Path, help="the device configuration ([share] is read)")
    lifecycle.add_argument("--credentials-dir", type=Path, required=True,
                           help="directory with the operator's s3-access-key and s3-secret-key")
    args = parser.parse_args(argv)
    share = load_config(args.config, environ={}).share
    if not share.bucket:
        raise ApplianceError("[share] bucket is not set in the configuration")
    keys = load_keys(args.credentials_dir, environ={})  # the operator's keys, not the service's
    store = Store(share.endpoint_url, share.bucket, share.region, keys, device_id="-")
    rule, changed = store.ensure_lifecycle(share.link_expiry_h)
    print(f"{share.bucket}: rule {rule['ID']} deletes photos/ after {rule['Expiration']['Days']} day(s) "
          f"({'set' if changed else 'already set'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
