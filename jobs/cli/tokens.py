"""`pose-service tokens create NAME [--scope S,..] [--admin] [--max-priority N] [--rate PER_MIN] | list |
revoke ID`: API bearer tokens kept hashed in the database, with their scopes and limits."""

from __future__ import annotations

import argparse
import sys

from jobs.cli.common import add_setting_flags, open_store, settings_from
from web.representation import iso


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from jobs.api_tokens import DEFAULT_MAX_PRIORITY, DEFAULT_RATE_PER_MIN, DEFAULT_SCOPES, MAX_CEILING

    tokens = subparsers.add_parser("tokens", help="API tokens: create, list, revoke")
    sub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a token and print it (once: only its hash is kept)")
    create.add_argument("name", help="who or what uses it, e.g. 'ingest-service'")
    create.add_argument(
        "--scope",
        default=",".join(DEFAULT_SCOPES),
        help=f"comma-separated scopes from submit, read, admin (default {','.join(DEFAULT_SCOPES)}); "
        "a non-admin token sees, cancels and retries only its own jobs",
    )
    create.add_argument("--admin", action="store_true", help="add the admin scope: every job, every scope")
    create.add_argument(
        "--max-priority",
        type=int,
        help=f"highest priority it may submit, 0..{MAX_CEILING} (default {DEFAULT_MAX_PRIORITY}; "
        "/pose/hybrid runs above every ceiling)",
    )
    create.add_argument(
        "--rate",
        type=int,
        metavar="PER_MIN",
        help=f"submits per minute, per web process (default {DEFAULT_RATE_PER_MIN}; 0 = unlimited)",
    )
    sub.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke = sub.add_parser("revoke", help="revoke a token by id (requests with it then get 403)")
    revoke.add_argument("id", type=int)
    for p in sub.choices.values():
        add_setting_flags(p)
    tokens.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jobs import api_tokens

    if args.tokens_command == "create":  # check everything before touching the database
        name = args.name.strip()
        if not name:
            print("a token needs a non-empty name", file=sys.stderr)
            return 2
        scopes = tuple(s.strip() for s in args.scope.split(",") if s.strip())
        if args.admin:
            scopes += (api_tokens.ADMIN,)
        scopes = tuple(dict.fromkeys(scopes))
        try:
            api_tokens.check_token_limits(scopes, args.max_priority, args.rate)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    _, store = open_store(settings_from(args), pool_size=1)
    try:
        if args.tokens_command == "create":
            record, token = api_tokens.create_token(
                store, name, scopes=scopes, max_priority=args.max_priority, rate_per_min=args.rate
            )
            print(token)
            print(
                f"created token {record.id} ({record.name}, scopes {','.join(record.scopes)}); "
                "store it now, it is not shown again",
                file=sys.stderr,
            )
        elif args.tokens_command == "list":
            records = api_tokens.list_tokens(store)
            print(
                f"{'ID':>4}  {'NAME':<24} {'SCOPES':<18} {'MAX PRIO':>8} {'RATE/MIN':>8}  "
                f"{'CREATED':<28} {'REVOKED':<28} LAST USED"
            )
            for r in records:
                prio = str(r.max_priority) if r.max_priority is not None else f"({api_tokens.DEFAULT_MAX_PRIORITY})"
                rate = {None: f"({api_tokens.DEFAULT_RATE_PER_MIN})", 0: "-"}.get(r.rate_per_min, str(r.rate_per_min))
                print(
                    f"{r.id:>4}  {r.name[:24]:<24} {','.join(r.scopes)[:18]:<18} {prio:>8} {rate:>8}  "
                    f"{iso(r.created_at):<28} {iso(r.revoked_at) or '-':<28} {iso(r.last_used_at) or '-'}"
                )
        elif args.tokens_command == "revoke":
            if not api_tokens.revoke_token(store, args.id):
                print(f"no token {args.id}", file=sys.stderr)
                return 1
            print(f"revoked token {args.id}")
        return 0
    finally:
        store.close()
