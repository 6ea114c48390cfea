"""``python -m infra users list|add|rotate|remove``: the cluster's SCRAM-SHA-512 principals, managed as ``admin``.

A new or rotated password is random (``--password-stdin`` reads one instead). With the local broker it is
kept in the local credential store (``<broker home>/users.json``, where local processes find it); with an
external cluster (ALLIANCE_KAFKA_BOOTSTRAP_SERVERS plus the admin's ALLIANCE_KAFKA_USERNAME/_PASSWORD) it
is printed once on standard output, for the operator to hand to its owner, and kept nowhere.
Removing a user deletes its credentials and every ACL naming it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from core.credentials import CredentialStore, new_password
from core.kafka_access import ADMIN, BROKER, MECHANISM
from core.settings import Settings
from core.topic_admin import admin_client
from infra.errors import InfraError

_MECHANISM = ScramMechanism[MECHANISM.replace("-", "_")]
NAME = r"^[A-Za-z0-9._-]{1,64}$"


def _store(settings: Settings) -> CredentialStore | None:
    return settings.credential_store


def list_users(settings: Settings) -> list[tuple[str, int]]:
    """(user, ACLs naming it) for every principal with SCRAM credentials on the cluster."""
    admin = admin_client(settings.kafka(ADMIN), "alliance-users")
    try:
        described = admin.describe_user_scram_credentials()
        acls, _error = admin.describe_acls(ACLFilter(
            principal=None, host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)))
    finally:
        admin.close()
    per_user: dict[str, int] = {}
    for acl in acls:
        per_user[acl.principal.removeprefix("User:")] = per_user.get(acl.principal.removeprefix("User:"), 0) + 1
    return sorted((user, per_user.get(user, 0)) for user in described)


def set_password(settings: Settings, user: str, password: str) -> None:
    """Create ``user`` or give it a new password (SCRAM-SHA-512 upsert, as admin)."""
    admin = admin_client(settings.kafka(ADMIN), "alliance-users")
    try:
        result = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, _MECHANISM, password)])
    finally:
        admin.close()
    if result.get(user):
        raise InfraError(f"the cluster refused the credentials of {user!r}: {result[user]}")


def remove_user(settings: Settings, user: str) -> int:
    """Delete ``user``'s credentials and every ACL naming it; returns how many ACLs were deleted."""
    if user in (ADMIN, BROKER):
        raise InfraError(f"the {user} principal cannot be removed (the brokers and provisioning need it)")
    admin = admin_client(settings.kafka(ADMIN), "alliance-users")
    try:
        result = admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, _MECHANISM)])
        deleted = admin.delete_acls([ACLFilter(
            principal=f"User:{user}", host="*", operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))])
    finally:
        admin.close()
    if result.get(user):
        raise InfraError(f"cannot remove {user!r}: {result[user]}")
    return sum(len(matching) for _filter, matching, _error in deleted)


def _new_password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        return new_password()
    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 16:
        raise InfraError("a password read from standard input must have at least 16 characters")
    return password


def main(settings: Settings, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra users", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="principals with SCRAM credentials, and how many ACLs name each")
    for action, text in (("add", "create a principal"), ("rotate", "give a principal a new password")):
        p = sub.add_parser(action, help=text)
        p.add_argument("user", help="principal name (a university's code, streams, projector, portal, ops, ...)")
        p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    rm = sub.add_parser("remove", help="delete a principal's credentials and ACLs")
    rm.add_argument("user")
    args = parser.parse_args(argv)
    import re

    if args.action != "list" and not re.match(NAME, args.user):
        raise InfraError(f"{args.user!r} is not a principal name ({NAME})")
    store = _store(settings)
    if args.action == "list":
        for user, acls in list_users(settings):
            print(f"{user:12} {acls:4} ACL(s)")
        return 0
    if args.action == "remove":
        deleted = remove_user(settings, args.user)
        if store is not None and store.exists():
            users = store.load()
            users.pop(args.user, None)
            store.save(users)
        print(f"removed {args.user} and {deleted} ACL(s)", file=sys.stderr)
        return 0
    known = {user for user, _ in list_users(settings)}
    if args.action == "add" and args.user in known:
        raise InfraError(f"{args.user} exists already (rotate gives it a new password)")
    if args.action == "rotate" and args.user not in known:
        raise InfraError(f"{args.user} does not exist (add creates it)")
    password = _new_password(args)
    set_password(settings, args.user, password)
    if store is not None:
        store.save({**(store.load() if store.exists() else {}), args.user: password})
        print(f"{args.action}: {args.user} ({MECHANISM}); password kept in {store.path}", file=sys.stderr)
    else:
        print(f"{args.action}: {args.user} ({MECHANISM}); its password (shown once, hand it over securely):",
              file=sys.stderr)
        print(password)
    return 0
