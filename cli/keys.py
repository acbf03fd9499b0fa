"""`tokenrelay keys create|list|revoke`: managed keys, straight in the control Redis.

No API key is needed: whoever can reach the control Redis runs the deployment.
The new key is printed once (stdout) and stored only as its SHA-256.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from services.api_keys import KeyLimits, KeyStore, ManagedKeyError, parse_scopes
from services.config import Settings
from services.redis_connections import command_client


def add_keys_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke managed API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="print a new key (once) and store its hash")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="")
    create.add_argument(
        "--scopes", default="generate,read,cancel", help="generate,read,cancel,admin"
    )
    create.add_argument("--requests-per-minute", type=int)
    create.add_argument("--max-streams", type=int)
    create.add_argument("--max-tokens", type=int)
    create.add_argument("--models", help="comma-separated PROVIDER/MODEL or PROVIDER/*")
    listing = actions.add_parser("list", help="every managed key, without the keys")
    listing.add_argument("--tenant")
    revoke = actions.add_parser("revoke", help="refused by every replica within 1 s")
    revoke.add_argument("id")


def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_run(args, settings))
    except ManagedKeyError as exc:
        print(f"tokenrelay keys: {exc}", file=sys.stderr)
        return 2


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    redis = command_client(settings, "tokenrelay-keys")
    store = KeyStore(redis)
    try:
        if args.action == "create":
            models = args.models.split(",") if args.models else None
            key, record = await store.create(
                args.tenant,
                name=args.name,
                scopes=parse_scopes(args.scopes),
                limits=KeyLimits(
                    requests_per_minute=args.requests_per_minute,
                    max_streams=args.max_streams,
                    max_tokens=args.max_tokens,
                    models=tuple(m.strip() for m in models) if models else None,
                ),
            )
            print(key)
            print(json.dumps(record.public()), file=sys.stderr)
        elif args.action == "list":
            for record in await store.list(args.tenant):
                print(json.dumps(record.public()))
        else:
            print(json.dumps((await store.revoke(args.id)).public()))
        return 0
    finally:
        await redis.aclose()
