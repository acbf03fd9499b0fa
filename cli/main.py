"""The `tokenrelay` command: `api`, `worker` and `dev`."""

from __future__ import annotations

import argparse
import sys

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
    args = parser.parse_args(argv)

    configure_logging()
    settings = Settings()
    if args.command == "api":
        from cli.serve import run_api

        run_api(settings, args.host, args.port)
        return 0
    if args.command == "worker":
        from worker.main import build_worker

        build_worker(settings).run()
        return 0
    from cli.dev import run_dev

    return run_dev(settings, port=args.port)


if __name__ == "__main__":
    sys.exit(main())
