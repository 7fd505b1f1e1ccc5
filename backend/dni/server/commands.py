"""The `dni serve`, `dni keys` and `dni broker` subcommands.

`register(subparsers)` adds them to the `dni` command's parser; each sets `handler`, a
function of the parsed arguments that returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from dni_client import protocol as P

from ..errors import DNIError
from .security import SecurityError, create_keys, load_keys


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the backend the editor plugins talk to")
    p.add_argument("--endpoint", default=None,
                   help=f"ZeroMQ endpoint to bind (default {P.DEFAULT_ENDPOINT}; "
                        "tcp://127.0.0.1:0 picks a free port; ipc://PATH also works)")
    p.add_argument("--connect", action="append", default=[], metavar="ENDPOINT",
                   help="connect to a broker's backend instead of binding (repeatable)")
    p.add_argument("--device", action="append", default=[],
                   help="auto (default), cpu, cuda:N or mps; repeat for one worker per device")
    p.add_argument("--curve-keys", type=Path, metavar="DIR",
                   help="a `dni keys` folder: encrypt and accept only authorized clients "
                        "(required for any non-loopback endpoint)")
    p.add_argument("--family-path", type=Path, action="append", default=[],
                   help="extra folder to search for families (repeatable)")
    p.add_argument("--max-pixels", type=int, default=P.MAX_PIXELS,
                   help=f"largest image accepted, in pixels (default {P.MAX_PIXELS})")
    p.add_argument("--max-queue", type=int, default=64, help="queued jobs, all clients")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(handler=cmd_serve)

    p = subparsers.add_parser("keys", help="make CurveZMQ keys for a remote `dni serve`")
    p.add_argument("dir", type=Path, help="folder for the keys (created if missing)")
    p.add_argument("--client", default="client", metavar="NAME",
                   help="name of the client key pair to add and authorize (default client)")
    p.set_defaults(handler=cmd_keys)

    p = subparsers.add_parser("broker", help="spread clients over several `dni serve` workers")
    p.add_argument("--frontend", default=P.DEFAULT_ENDPOINT,
                   help=f"endpoint the clients connect to (default {P.DEFAULT_ENDPOINT})")
    p.add_argument("--backend", default="tcp://127.0.0.1:5558",
                   help="endpoint the workers connect to with `dni serve --connect`")
    p.add_argument("--curve-keys", type=Path, metavar="DIR")
    p.set_defaults(handler=cmd_broker)


def _fail(message: str) -> int:
    print(f"dni: error: {message}", file=sys.stderr)
    return 2


def _stop_on_signals(stop: Any) -> None:
    def handler(_signum: int, _frame: Any) -> None:
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="dni serve: %(message)s")
    endpoint = args.endpoint or (None if args.connect else P.DEFAULT_ENDPOINT)
    try:
        keys = load_keys(args.curve_keys) if args.curve_keys else None
        from .limits import Limits
        from .security import check_endpoint
        from .server import Server

        for address in ([endpoint] if endpoint else []) + args.connect:
            check_endpoint(address, keys)  # refuse before torch is even imported
        limits = Limits(max_pixels=args.max_pixels, max_queue=args.max_queue)
        server = Server(endpoint, connect=args.connect, devices=args.device or ["auto"],
                        family_paths=args.family_path, curve=keys, limits=limits)
    except (SecurityError, DNIError) as exc:
        return _fail(str(exc))
    # Starting can fail in many ways (address in use, a broken device, torch itself): the
    # user gets one line, not a traceback.
    except Exception as exc:  # noqa: BLE001
        return _fail(f"cannot start the server: {exc}")

    def ready(srv: Server) -> None:
        # Tests and the plugin's launcher wait for this line.
        for address in srv.endpoints:
            print(f"listening on {address} (devices: {', '.join(srv.devices)})", flush=True)

    _stop_on_signals(server.stop)
    server.serve(ready)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    try:
        written = create_keys(args.dir, args.client)
    except (SecurityError, OSError) as exc:
        return _fail(str(exc))
    for path in written:
        print(f"wrote {path}")
    print(f"start the server with --curve-keys {args.dir}; give each client "
          f"{args.dir / 'server.key'} and its own {args.client}.key_secret")
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from .broker import Broker

    try:
        keys = load_keys(args.curve_keys) if args.curve_keys else None
        broker = Broker(args.frontend, args.backend, curve=keys)
    except SecurityError as exc:
        return _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. address in use: one line, not a trace
        return _fail(f"cannot start the broker: {exc}")
    print(f"listening on {broker.endpoints[0]} (workers: {broker.endpoints[1]})", flush=True)
    broker.serve()  # SIGTERM ends the process (the broker holds no jobs); ctrl-C returns
    return 0
