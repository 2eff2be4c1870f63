"""`pose-service tokens create NAME | list | revoke ID`: API bearer tokens kept hashed in the database."""

from __future__ import annotations

import argparse
import sys

from jobs.cli.common import add_common_flags, open_store, settings_from
from web.representation import iso


def register(subparsers: argparse._SubParsersAction) -> None:
    tokens = subparsers.add_parser("tokens", help="API tokens: create, list, revoke")
    sub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a token and print it (once: only its hash is kept)")
    create.add_argument("name", help="who or what uses it, e.g. 'ingest-service'")
    sub.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke = sub.add_parser("revoke", help="revoke a token by id (requests with it then get 403)")
    revoke.add_argument("id", type=int)
    for p in sub.choices.values():
        add_common_flags(p)
    tokens.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jobs import api_tokens

    _, store = open_store(settings_from(args), pool_size=1)
    try:
        if args.tokens_command == "create":
            name = args.name.strip()
            if not name:
                print("a token needs a non-empty name", file=sys.stderr)
                return 2
            record, token = api_tokens.create_token(store.engine, name)
            print(token)
            print(
                f"created token {record.id} ({record.name}); store it now, it is not shown again",
                file=sys.stderr,
            )
        elif args.tokens_command == "list":
            records = api_tokens.list_tokens(store.engine)
            print(f"{'ID':>4}  {'NAME':<24} {'CREATED':<28} {'REVOKED':<28} LAST USED")
            for r in records:
                print(
                    f"{r.id:>4}  {r.name[:24]:<24} {iso(r.created_at):<28} {iso(r.revoked_at) or '-':<28} "
                    f"{iso(r.last_used_at) or '-'}"
                )
        elif args.tokens_command == "revoke":
            if not api_tokens.revoke_token(store.engine, args.id):
                print(f"no token {args.id}", file=sys.stderr)
                return 1
            print(f"revoked token {args.id}")
        return 0
    finally:
        store.close()
