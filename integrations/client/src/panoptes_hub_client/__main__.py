"""``python -m panoptes_hub_client send-spool FILE... --address URL [--token TOKEN]``.

Delivers spool files where the engine ran, with nothing but this package installed (the hub's
own ``panoptes send-spool`` does the same where the hub is installed).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .spool import SpoolBusy, send_spool
from .transport import HubError

# Where the integrations read their token from, in this order.
TOKEN_VARIABLES = ("SNAKEMAKE_LOGGER_PANOPTES_TOKEN", "NECROFLOW_PANOPTES_TOKEN")


def main(argv: Sequence[str] | None = None) -> int:
    """Send each spool file; the exit status is 1 if any was not delivered."""
    parser = argparse.ArgumentParser(prog="python -m panoptes_hub_client")
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send-spool", help="deliver spool files to a hub")
    send.add_argument("paths", nargs="+", help="spool files (*.jsonl)")
    send.add_argument("--address", required=True, help="URL of the hub")
    send.add_argument(
        "--token",
        default=next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None),
        help=f"access token, if the hub needs one (default: ${TOKEN_VARIABLES[0]})",
    )
    send.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.paths:
        try:
            sent = send_spool(path, args.address, token=args.token, timeout=args.timeout)
        except (HubError, SpoolBusy, FileNotFoundError, ValueError) as error:
            failed += 1
            print(f"{path}: not sent: {error}", file=sys.stderr)
        else:
            print(f"{path}: {sent} event(s) delivered.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
