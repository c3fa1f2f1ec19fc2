"""The `appliance` command: serve, process, migrate and manage accounts."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable

from appliance import __version__
from appliance.core.accounts import (
    AccountError,
    check_password_strength,
    hash_password,
    new_token,
    normalize_domain,
    normalize_email,
    token_digest,
)
from appliance.core.invitations import invitation_url, invite
from appliance.core.plugin_errors import PluginError
from appliance.core.runtime import Appliance
from appliance.core.settings import SettingsError, load_settings
from appliance.core.stores import call
from appliance.core.transport import TransportUnavailable
from appliance.logs import configure_logging

log = logging.getLogger("appliance")


class CliError(Exception):
    """Stops the command with a one-line message and exit status 1."""


def _with_accounts(action: Callable[[Appliance, argparse.Namespace], Awaitable[None]]):  # noqa: ANN202
    """Run `action` with the account store open (and migrated), then close it."""

    def run(args: argparse.Namespace) -> None:
        appliance = Appliance.create()

        async def body() -> None:
            await call(appliance.accounts.open)
            try:
                await action(appliance, args)
            finally:
                await call(appliance.accounts.close)

        asyncio.run(body())

    return run


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from appliance.app import create_app
    from appliance.core.gc_tuning import tune_for_throughput
    from appliance.web.protocol import request_timeout_protocol

    configure_logging(load_settings())
    appliance = Appliance.create()
    settings = appliance.settings
    app = create_app(appliance)
    tune_for_throughput()  # every request allocates; the modules and plugins loaded stay
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers go through configure_logging's handler
        access_log=False,  # replaced by appliance.access (route templates, no addresses)
        proxy_headers=False,  # X-Forwarded-For is honoured only from INGEST.TRUSTED_PROXIES
        http=request_timeout_protocol(settings.request_timeout_s),
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def cmd_process(args: argparse.Namespace) -> None:
    from appliance.core.gc_tuning import tune_for_throughput
    from appliance.web.metrics_server import start_metrics_server

    configure_logging(load_settings())
    appliance = Appliance.create()
    if appliance.transport.name == "memory":
        raise CliError(
            "TRANSPORT: the memory transport lives inside `appliance serve`; "
            "`appliance process` needs a shared transport such as kafka"
        )

    async def body() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await appliance.start(serve=False, process=True)  # a failed start releases itself
        try:
            metrics_server = await start_metrics_server(appliance)
        except BaseException:
            await appliance.stop()
            raise
        tune_for_throughput()
        log.info("processing; SIGTERM or Ctrl-C stops after the last flush and commit")
        await stop.wait()
        log.info("stopping: flushing what was consumed, committing, leaving the group")
        await appliance.stop()
        if metrics_server is not None:
            await asyncio.to_thread(metrics_server.stop)
        log.info("stopped")

    try:
        asyncio.run(body())
    except TransportUnavailable as error:
        raise CliError(str(error)) from None


def cmd_doctor(args: argparse.Namespace) -> None:
    from appliance import doctor

    settings = load_settings()
    configure_logging(settings)
    try:
        appliance = Appliance.create()
    except OSError:  # the data directory is unusable (the secret key lives there)
        results = doctor.data_dir_only(settings)
    else:
        results = doctor.diagnose(appliance, args.timeout)
    lines, failed = doctor.report(results)
    print("\n".join(lines), flush=True)
    if failed:
        raise CliError(f"doctor: {failed} of {len(results)} checks failed")


def cmd_healthcheck(args: argparse.Namespace) -> None:
    """For a container's HEALTHCHECK: does this host's process answer /healthz?

    `serve` answers on `port`; `process` only on `metrics.port`, asked first when set.
    """
    import urllib.request

    settings = load_settings()
    port, host = int(settings.metrics.port), str(settings.metrics.host)
    if not port:
        port, host = int(settings.port), str(settings.host)
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (an address to ask, not to bind)
        host = "127.0.0.1"
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as answer:  # noqa: S310 (http://)
            answer.read()
    except OSError as error:
        raise CliError(f"healthcheck: {url} did not answer ({error})") from None


def cmd_migrate(args: argparse.Namespace) -> None:
    appliance = Appliance.create()

    async def body() -> None:
        await appliance.open_stores()
        await appliance.close_stores()

    asyncio.run(body())
    print("migrations applied")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise CliError("password: the two passwords differ")
    return first


@_with_accounts
async def cmd_user_add(appliance: Appliance, args: argparse.Namespace) -> None:
    email = normalize_email(args.email)
    password = _read_password(args)
    check_password_strength(password)
    first = await call(appliance.accounts.count_users) == 0
    user = await call(
        appliance.accounts.create_user, email, hash_password(password), args.admin or first
    )
    print(f"created user {user.email}{' (admin)' if user.is_admin else ''}")


async def _user_id(appliance: Appliance, raw_email: str) -> int:
    found = await call(appliance.accounts.user_by_email, normalize_email(raw_email))
    if found is None:
        raise CliError(f"email: no user {raw_email!r} (create one with `appliance user add`)")
    return found[0].id


@_with_accounts
async def cmd_site_add(appliance: Appliance, args: argparse.Namespace) -> None:
    owner_id = await _user_id(appliance, args.owner)
    site = await call(appliance.accounts.create_site, normalize_domain(args.domain), owner_id)
    print(f"created site {site.domain} owned by {args.owner}")


@_with_accounts
async def cmd_token_create(appliance: Appliance, args: argparse.Namespace) -> None:
    user_id = await _user_id(appliance, args.email)
    token = new_token("ak")
    await call(appliance.accounts.create_api_key, user_id, args.name, token_digest(token))
    print(f"API key {args.name!r} for {args.email} (shown once, keep it secret):")
    print(token)


@_with_accounts
async def cmd_invite(appliance: Appliance, args: argparse.Namespace) -> None:
    domain = normalize_domain(args.site)
    sites = await call(appliance.accounts.all_sites)
    site = next((site for site in sites if site.domain == domain), None)
    if site is None:
        raise CliError(f"site: no site {domain!r} (add one with `appliance site add`)")
    invitation, token = await invite(appliance.accounts, site.id, args.email, args.role, None)
    settings = appliance.settings
    base = settings.get("public_url") or f"http://{settings.host}:{settings.port}"
    print(f"invited {invitation.email} to {site.domain} as {invitation.role}; send them this")
    print("link (it works once, for 7 days; set public_url if this address is wrong):")
    print(invitation_url(base, token))


def cmd_plugins(args: argparse.Namespace) -> None:
    from appliance.core.plugin_report import format_rows, plugin_rows

    print(format_rows(plugin_rows(Appliance.create())))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description=__doc__)
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the web app (and the embedded processor)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=cmd_serve)
    commands.add_parser("process", help="run the processor alone").set_defaults(run=cmd_process)
    commands.add_parser("migrate", help="create or upgrade the stores").set_defaults(
        run=cmd_migrate
    )
    commands.add_parser("plugins", help="list loaded plugins").set_defaults(run=cmd_plugins)
    doctor = commands.add_parser(
        "doctor", help="check every configured service; one line each, non-zero on a failure"
    )
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds per check")
    doctor.set_defaults(run=cmd_doctor)
    healthcheck = commands.add_parser(
        "healthcheck", help="exit 0 when this host's serve or process answers /healthz"
    )
    healthcheck.add_argument("--timeout", type=float, default=3.0)
    healthcheck.set_defaults(run=cmd_healthcheck)

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="action", required=True
    )
    user_add = user.add_parser("add", help="create a user")
    user_add.add_argument("email")
    user_add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    user_add.add_argument("--admin", action="store_true", help="make the user an administrator")
    user_add.set_defaults(run=cmd_user_add)

    site = commands.add_parser("site", help="manage sites").add_subparsers(
        dest="action", required=True
    )
    site_add = site.add_parser("add", help="register a site (domain)")
    site_add.add_argument("domain")
    site_add.add_argument("--owner", required=True, help="email of the owning user")
    site_add.set_defaults(run=cmd_site_add)

    token = commands.add_parser("token", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    token_create = token.add_parser("create", help="create an API key for a user")
    token_create.add_argument("email")
    token_create.add_argument("--name", default="cli")
    token_create.set_defaults(run=cmd_token_create)

    invite_cmd = commands.add_parser("invite", help="invite an email to a site; prints a link")
    invite_cmd.add_argument("email")
    invite_cmd.add_argument("--site", required=True, help="the site's domain")
    invite_cmd.add_argument("--role", choices=("viewer", "admin"), default="viewer")
    invite_cmd.set_defaults(run=cmd_invite)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except SettingsError as error:
        print(f"appliance: setting {error}", file=sys.stderr)
        return 2
    except (CliError, AccountError) as error:
        print(f"appliance: {error}", file=sys.stderr)
        return 1
    except PluginError as error:
        traceback.print_exception(error.__cause__ or error, file=sys.stderr)
        print(f"appliance: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
