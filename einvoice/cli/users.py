"""``einvoice users add|list|disable|reset-password``: the people who sign in to the accountants'
pages (``/ui/``), and ``einvoice institutions set-approval``: an institution's approval limits.

Exit codes as the other administration commands: 0 done; 1 refused (unknown institution, weak
password, name taken, no such user); 2 the database cannot be reached or is not migrated.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from einvoice.cli.admin import _refused, _say_empty, database_in_use, institutions_app, opened

users_app = typer.Typer(
    help="People who sign in to the accountants' pages (/ui/): their role and the institutions they see.",
    no_args_is_help=True,
)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input instead of prompting for it.",
    ),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Option("--username", help="The name the user signs in with.")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="One of accountant (works the queue), approver (also approves over a variance) or administrator "
            "(also manages users and approval rules).",
        ),
    ],
    institution: Annotated[
        list[str] | None,
        typer.Option(
            "--institution",
            metavar="ENDPOINT",
            help="Endpoint SCHEME:ID of an institution whose documents the user sees; repeat for several.",
        ),
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a user of the accountants' pages; the password (at least 12 characters) is prompted for,
    or read from standard input with --password-stdin. Only its Argon2id hash is stored."""
    from einvoice.errors import NotFoundError, UserError
    from einvoice.services import users

    password = _password(password_stdin)
    with opened() as uow_factory:
        try:
            user = users.add_user(
                uow_factory(), username=username, role=role, institutions=institution or [], password=password
            )
        except (UserError, NotFoundError, ValueError) as exc:
            raise _refused(exc) from None
    typer.echo(f"user {user.username}: {user.role.value}, institutions {', '.join(user.institutions) or 'none'}")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List the users (never their passwords)."""
    from einvoice.services import users

    with opened() as uow_factory:
        items = users.list_users(uow_factory())
    if as_json:
        typer.echo(json.dumps([u.to_dict() for u in items], indent=2))
    if not items:
        _say_empty("users")
    if as_json or not items:
        return
    from einvoice.cli.tables import Column, print_table

    print_table(
        [Column("user", identifier=True), Column("role"), Column("institutions", identifier=True), Column("state")],
        [
            [
                u.username,
                u.role.value,
                " ".join(u.institutions),
                ("active" if u.active else "disabled") + (" (locked out)" if u.locked_until else ""),
            ]
            for u in items
        ],
    )


@users_app.command("disable")
def users_disable(username: Annotated[str, typer.Argument(help="The user's name.")]) -> None:
    """Stop a user from signing in; their open sessions end at once."""
    from einvoice.errors import NotFoundError
    from einvoice.services import users

    with opened() as uow_factory:
        try:
            user = users.disable_user(uow_factory(), username)
        except NotFoundError as exc:
            raise _refused(f"{exc} in {database_in_use()}") from None
    typer.echo(f"user {user.username}: disabled")


@users_app.command("reset-password")
def users_reset_password(
    username: Annotated[str, typer.Argument(help="The user's name.")], password_stdin: PasswordStdin = False
) -> None:
    """Give a user a new password (prompted for, or from standard input with --password-stdin); lifts
    a lock-out and ends the user's open sessions."""
    from einvoice.errors import NotFoundError, UserError
    from einvoice.services import users

    password = _password(password_stdin)
    with opened() as uow_factory:
        try:
            user = users.reset_password(uow_factory(), username, password)
        except NotFoundError as exc:
            raise _refused(f"{exc} in {database_in_use()}") from None
        except UserError as exc:
            raise _refused(exc) from None
    typer.echo(f"user {user.username}: password reset")


@institutions_app.command("set-approval")
def institutions_set_approval(
    endpoint: Annotated[str, typer.Argument(help="The institution's endpoint SCHEME:ID.")],
    person_above: Annotated[
        str | None,
        typer.Option("--person-above", help="A matched invoice above this amount waits for a person's approval."),
    ] = None,
    two_people_above: Annotated[
        str | None,
        typer.Option(
            "--two-people-above", help="An approval above this amount needs two different people (four eyes)."
        ),
    ] = None,
) -> None:
    """Set an institution's approval limits (an option left out: no limit)."""
    from einvoice.errors import NotFoundError, UserError
    from einvoice.services import users

    with opened() as uow_factory:
        try:
            rule = users.set_approval_rule(
                uow_factory(), endpoint, person_above=person_above, two_people_above=two_people_above
            )
        except (NotFoundError, UserError, ValueError) as exc:
            raise _refused(exc) from None
    typer.echo(
        f"institution {endpoint}: a person above {rule.person_above if rule.person_above is not None else 'no limit'}, "
        f"two people above {rule.two_people_above if rule.two_people_above is not None else 'no limit'}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
