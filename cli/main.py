"""The `tokenrelay` command: `api`, `worker`, `dev`, `tail` and `keys`."""

from __future__ import annotations

import argparse
import sys

from cli.keys import add_keys_command, run_keys
from cli.logs import configure_logging
from services.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tokenrelay", description="Redis-backed fan-out broker for LLM token streams."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("api", help="run the stateless HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    commands.add_parser("worker", help="run a worker that calls the providers")
    dev = commands.add_parser("dev", help="API, one worker and a Redis on this machine")
    dev.add_argument("--port", type=int, default=8000)
    tail = commands.add_parser(
        "tail", help="print a generation's text live, resuming by itself (exit 0 if completed)"
    )
    tail.add_argument("id", help="the generation id (gen_…)")
    tail.add_argument("--url", help="the API (default: $TOKENRELAY_URL or http://127.0.0.1:8000)")
    credential = tail.add_mutually_exclusive_group()
    credential.add_argument("--key", help="API key (default: $TOKENRELAY_API_KEY)")
    credential.add_argument("--token", help="a viewer token for this generation")
    add_keys_command(commands)
    args = parser.parse_args(argv)

    if args.command == "tail":
        from cli.tail import run_tail

        return run_tail(args.id, url=args.url, key=args.key, token=args.token)

    configure_logging()
    settings = Settings()
    if args.command == "keys":
        return run_keys(args, settings)
    try:
        return run_service(args, settings)
    except KeyboardInterrupt:
        # Ctrl-C reaches every process of the terminal's group; each one has shut
        # down by now, and a traceback would only alarm whoever pressed it.
        return 130


def run_service(args: argparse.Namespace, settings: Settings) -> int:
    """`api`, `worker` or `dev`: run until a signal stops it."""
    if args.command == "api":
        from cli.serve import run_api

        run_api(settings, args.host, args.port)
        return 0
    if args.command == "worker":
        from cli.event_loop import install_fastest_loop
        from worker.main import build_worker

        install_fastest_loop()
        build_worker(settings).run()
        return 0
    from cli.dev import run_dev

    return run_dev(settings, port=args.port)


if __name__ == "__main__":
    sys.exit(main())
