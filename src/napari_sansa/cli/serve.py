"""``napari-sansa serve``: this machine's model for laptops, behind mutual TLS (see the guide's
"A GPU server for your laptop")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_sansa.cli.cluster import model_spec
from napari_sansa.cli.options import add_model_options
from napari_sansa.distributed import start_server, wait_for_stop

DEFAULT_PORT = 8786  # Dask's


def add_parser(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="compute for laptops: a Dask scheduler and one worker per GPU with the model loaded, "
        "reachable only with this server's client certificate (mutual TLS)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
                       "0.0.0.0: every network)")  # fmt: skip
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0: any free port"
    )
    serve.add_argument(
        "--credentials",
        type=Path,
        required=True,
        metavar="DIR",
        help="the server's certificates, made here if missing; copy DIR/client/ to each laptop",
    )
    add_model_options(serve)


def serve(args: argparse.Namespace) -> int:
    """Start the server, say ``ready`` with its address, serve until Ctrl-C or SIGTERM."""
    print("napari-sansa: starting the server and loading the model…", file=sys.stderr, flush=True)
    with start_server(model_spec(args), args.credentials, args.host, args.port) as server:
        client = Path(args.credentials).expanduser().absolute() / "client"
        print(
            f"napari-sansa: ready at {server.address} (model on {', '.join(server.devices)}); "
            f"laptops connect with the client credentials in {client}",
            flush=True,
        )
        wait_for_stop()
        print("napari-sansa: stopping the server", file=sys.stderr, flush=True)
    return 0
