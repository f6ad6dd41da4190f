"""``fhir-hub``: the command line. Every subcommand has ``--help``.

Options override the matching ``FHIR_HUB_*`` environment variables, which override the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fhir_hub import __version__
from fhir_hub.config import ConfigError, Settings

if TYPE_CHECKING:
    from fhir_hub.hub import Hub

log = logging.getLogger("fhir_hub")
_DEMO_PATIENT = "129c6ac7-8d06-89de-ad63-0204a93e76c3"  # the demo data set's resident born in 1927


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=getattr(args, "data_dir", None),
        log_level=getattr(args, "log_level", None),
    )


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_hub.demo import load_demo
    from fhir_hub.main import create_app, prepare_to_serve

    settings = _settings(args)
    _setup_logging(settings.log_level)
    base = settings.served_base_url

    async def on_startup(hub: Hub) -> None:
        if not args.no_demo:
            report = await load_demo(hub, progress=sys.stderr.isatty())
            log.info("demo data: %d resources loaded, %d already present", report.created, report.already_present)
        where = "embedded nx-27017, data in " + str(settings.data_dir.resolve()) if settings.mongodb_uri is None \
            else "MongoDB at FHIR_HUB_MONGODB_URI"
        print(
            f"\n  FHIR hub {__version__} is starting on {base}\n"
            f"  store:        {where}\n"
            f"  capabilities: {base}/metadata (public)\n"
            f"  a token:      TOKEN=$(.venv/bin/fhir-hub token --role system --facility 79001)\n"
            f"  try:          curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/Patient?_count=5'\n"
            f"  as a resident: .venv/bin/fhir-hub token --role resident --patient {_DEMO_PATIENT}\n"
            f"  her page:     .venv/bin/fhir-hub token --role resident --patient {_DEMO_PATIENT} --portal-link\n"
            f"  API docs:     {base}/docs\n"
            "  stop with Ctrl-C\n",
            flush=True,
        )
        await prepare_to_serve(hub)

    app = create_app(settings, on_startup=on_startup, with_workers=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                proxy_headers=False)
    return 0


def _on_hub(args: argparse.Namespace, job: Callable[[Hub], Awaitable[str]]) -> int:
    """Open the hub as configured, run ``job`` on it, print what it says, close the hub."""
    from fhir_hub.hub import running_hub

    settings = _settings(args)
    _setup_logging(settings.log_level)

    async def run() -> str:
        async with running_hub(settings) as hub:
            return await job(hub)

    print(asyncio.run(run()))
    return 0


def cmd_load_demo(args: argparse.Namespace) -> int:
    from fhir_hub.demo import load_demo

    async def job(hub: Hub) -> str:
        report = await load_demo(hub, progress=sys.stderr.isatty())
        return (f"demo data: {report.created} resources loaded, {report.already_present} already present; "
                f"patients: {', '.join(report.patients)}")

    return _on_hub(args, job)


def cmd_relink(args: argparse.Namespace) -> int:
    from fhir_hub.linking.relink import relink

    async def job(hub: Hub) -> str:
        report = await relink(hub, progress=sys.stderr.isatty())
        return f"relink: {report.records} Patient records, {report.linked} linked now, {report.masters} masters rebuilt"

    return _on_hub(args, job)


def cmd_token(args: argparse.Namespace) -> int:
    from fhir_hub.auth.dev_tokens import development_token

    settings = Settings.from_env(data_dir=args.data_dir)
    token = development_token(settings, role=args.role, facility=args.facility, patient=args.patient, scope=args.scope,
                              subject=args.subject, ttl_seconds=args.ttl, purpose=args.purpose,
                              fhir_user=args.fhir_user)
    print(portal_link(settings.served_base_url, token) if args.portal_link else token)
    return 0


def portal_link(base: str, token: str) -> str:
    """The resident page with the token in the URL's fragment: a browser never sends a fragment to a server,
    so the token stays out of the hub's and any proxy's access logs (the page moves it out of the address bar)."""
    return f"{base}/portal#token={token}"


def cmd_openapi(args: argparse.Namespace) -> int:
    from fhir_hub.main import create_app

    document = orjson.dumps(create_app(Settings()).openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if args.output:
        Path(args.output).write_bytes(document + b"\n")
        print(f"wrote {args.output}")
    else:
        sys.stdout.buffer.write(document + b"\n")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from fhir_hub.ingest.client import exit_code, files_in, ingest_files, summary

    paths = files_in(args.paths)
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    results = ingest_files(paths, url=args.url, token=args.token, format_name=args.format,
                           progress=sys.stderr.isatty(), backfill=args.backfill)
    print(summary(results))
    return exit_code(results)


def cmd_worker(args: argparse.Namespace) -> int:
    """Claim and run the queue's jobs until stopped (SIGTERM or Ctrl-C finish the job in hand first)."""
    import signal

    from fhir_hub.hub import running_hub
    from fhir_hub.queue.worker import Worker

    settings = _settings(args)
    _setup_logging(settings.log_level)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with running_hub(settings) as hub:
            worker = Worker(hub)
            log.info("worker %s: claiming jobs (stop with Ctrl-C or SIGTERM)", worker.name)
            return await worker.run(stop, until_empty=args.until_empty)

    done = asyncio.run(run())
    print(f"worker: {done} jobs done")
    return 0


def cmd_queue_status(args: argparse.Namespace) -> int:
    from fhir_hub.queue.jobs import STATES, TIERS
    from fhir_hub.queue.progress import queue_summary

    async def job(hub: Hub) -> str:
        summary = await queue_summary(hub.queue)
        rows = [f"{'state':<9}" + "".join(f"{t:>10}" for t in TIERS)]
        rows += [f"{state:<9}" + "".join(f"{summary.status.of(state, t):>10,}" for t in TIERS) for state in STATES]
        eta = summary.eta_seconds("high")
        rows.append(f"throughput: {summary.per_second:.1f} jobs/s over the last minute; high-risk backlog done in "
                    + (f"{eta:,.0f} s" if eta is not None else "(nothing ran in the last minute)"))
        return "\n".join(rows)

    return _on_hub(args, job)


def cmd_queue_retry(args: argparse.Namespace) -> int:
    async def job(hub: Hub) -> str:
        moved = await hub.queue.retry(args.jobs or None)
        return f"queue: {moved} dead job(s) back in the queue"

    return _on_hub(args, job)


def cmd_replay(args: argparse.Namespace) -> int:
    from fhir_hub.ingest.client import exit_code, replay_archives, summary

    results = replay_archives(args.archives, url=args.url, token=args.token)
    print(summary(results))
    return exit_code(results)


def cmd_client_register(args: argparse.Namespace) -> int:
    """Register (or re-register) a backend client in the store: checked exactly as the token endpoint will."""
    from fhir_hub.auth.backend import RegistrationError, client_from_registration

    registration: dict[str, object] = {"client_id": args.client_id, "scope": args.scope}
    if args.facility:
        registration["facility"] = args.facility
    if args.jwks:
        try:
            registration["jwks"] = orjson.loads(Path(args.jwks).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"--jwks {args.jwks}: {exc}") from None
    if args.jwks_url:
        registration["jwks_url"] = args.jwks_url
    try:
        client = client_from_registration(registration)
    except RegistrationError as exc:
        raise ConfigError(str(exc)) from None

    async def job(hub: Hub) -> str:
        await hub.store.backend_clients.put(registration)
        return (f"client {client.client_id}: registered (scopes {client.scopes}, facility "
                f"{client.facility or 'none: the hub operator'})")

    return _on_hub(args, job)


def cmd_client_remove(args: argparse.Namespace) -> int:
    async def job(hub: Hub) -> str:
        removed = await hub.store.backend_clients.remove(args.client_id)
        return f"client {args.client_id}: " + ("removed" if removed else "not registered in the store")

    return _on_hub(args, job)


def cmd_client_keygen(args: argparse.Namespace) -> int:
    from fhir_hub.auth.keys import new_client_key

    pem, public = new_client_key(args.alg, args.kid)
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{args.out} exists: a key is never overwritten") from None
    with os.fdopen(fd, "w") as out:
        out.write(pem)
    print(orjson.dumps({"keys": [public]}, option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_client_assertion(args: argparse.Namespace) -> int:
    from fhir_hub.auth.tokens import client_assertion

    print(client_assertion(Path(args.key).read_text(), algorithm=args.alg, kid=args.kid, client_id=args.client_id,
                           token_url=args.aud))
    return 0


def _client_options(command: argparse.ArgumentParser) -> None:
    from fhir_hub.ingest.client import DEFAULT_URL

    command.add_argument("--url", default=os.environ.get("FHIR_HUB_URL", DEFAULT_URL),
                         help=f"the running hub (FHIR_HUB_URL, default {DEFAULT_URL})")
    command.add_argument("--token", default=os.environ.get("FHIR_HUB_TOKEN"),
                         help="bearer token of the sending system (FHIR_HUB_TOKEN); see `fhir-hub token`")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fhir-hub",
        description="Ho Chi Minh City FHIR interoperability hub. Settings come from FHIR_HUB_* environment "
                    "variables (see README); the options below override them.",
    )
    parser.add_argument("--version", action="version", version=f"fhir-hub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the FHIR server (and the embedded store when no MongoDB is set)",
                           description="Run the FHIR REST server. Without FHIR_HUB_MONGODB_URI an embedded "
                                       "nx-27017 store is started under the data directory and stopped on exit.")
    serve.add_argument("--host", help="address to listen on (FHIR_HUB_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (FHIR_HUB_PORT, default 8080)")
    serve.add_argument("--data-dir", type=Path, help="where the embedded store keeps its file (FHIR_HUB_DATA_DIR)")
    serve.add_argument("--no-demo", action="store_true", help="do not load the demo data set at start-up")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="log verbosity")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("load-demo", help="load the bundled demo data (Synthea) into the store, then exit",
                          description="Load the demo data set through the normal write path; resources "
                                      "already present are left alone.")
    demo.add_argument("--data-dir", type=Path, help="embedded store directory (FHIR_HUB_DATA_DIR)")
    demo.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="log verbosity")
    demo.set_defaults(func=cmd_load_demo)

    relink_ = sub.add_parser("relink", help="link Patients stored without a master, rebuild every master",
                             description="Patient matching for records stored before it existed (or while "
                                         "FHIR_HUB_LINK_PATIENTS was off), and repair after a stop between a "
                                         "record and its master. Idempotent; stop the hub's writers first or "
                                         "not (it takes the same claims as they do).")
    relink_.add_argument("--data-dir", type=Path, help="embedded store directory (FHIR_HUB_DATA_DIR)")
    relink_.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="log verbosity")
    relink_.set_defaults(func=cmd_relink)

    token = sub.add_parser("token", help="mint a development bearer token (development mode only)",
                           description="Print a JWT signed with the development key in the data directory. "
                                       "Refused in production and when a JWKS is configured: tokens then come "
                                       "from the authorization server.")
    token.add_argument("--role", choices=("system", "clinician", "resident"), required=True,
                       help="system: a hospital system (system/ scopes); clinician: user/ scopes; "
                            "resident: patient/ scopes, needs --patient")
    token.add_argument("--facility", help="5-character MoH facility code (MA_CSKCB), e.g. 79001; needed to write")
    token.add_argument("--patient", help="the resident's Patient id (patient context)")
    token.add_argument("--scope", help="space-separated SMART scopes (default by role: system/*.cruds, "
                                       "user/*.cruds, patient/*.rs patient/Consent.cud patient/Task.c)")
    token.add_argument("--subject", help="the token's sub (default: generated)")
    token.add_argument("--fhir-user", help="fhirUser claim, e.g. Practitioner/123")
    token.add_argument("--purpose", help="purpose_of_use: TREAT (default), ETREAT, PUBHLTH ...")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (default 3600, or less if "
                                               "FHIR_HUB_MAX_TOKEN_LIFETIME_SECONDS is lower; never more)")
    token.add_argument("--data-dir", type=Path, help="where the development key lives (FHIR_HUB_DATA_DIR)")
    token.add_argument("--portal-link", action="store_true",
                       help="print the resident page's address with the token in its #fragment (open it in a browser)")
    token.set_defaults(func=cmd_token)

    ingest = sub.add_parser(
        "ingest", help="send files (MoH XML, HL7 v2, CSV, FHIR JSON/NDJSON) to a running hub's $ingest",
        description="Send each file as it is to POST /$ingest of the hub named by --url, with the token of "
                    "--token: the hub archives it, maps it with the adapter of its format, stores the good "
                    "records and reports the bad ones. Folders are walked; CSV patient files go first. Exit "
                    "status: 0 all stored, 1 some records rejected, 2 a file could not be sent.")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    from adapters.registry import formats

    ingest.add_argument("--format", choices=formats(), help="the files' format (default: detected by the hub)")
    ingest.add_argument("--backfill", action="store_true",
                        help="queue the records instead of storing them now (Prefer: respond-async): the hub's "
                             "workers store the highest-risk people's records first; watch `fhir-hub queue status`")
    _client_options(ingest)
    ingest.set_defaults(func=cmd_ingest)

    replay = sub.add_parser("replay", help="map archived payloads again (after a mapping fix)",
                            description="Ask the hub to map archived payloads again (POST /$replay). Records "
                                        "stored before are found again, not doubled.")
    replay.add_argument("archives", nargs="+", metavar="ARCHIVE_ID", help="archive ids from an ingest report")
    _client_options(replay)
    replay.set_defaults(func=cmd_replay)

    worker = sub.add_parser("worker", help="run a worker of the priority queue (any number, on any machine)",
                            description="Claim the queue's jobs highest priority first and run them, until "
                                        "stopped. Needs FHIR_HUB_MONGODB_URI (the store the hub uses); "
                                        "`fhir-hub serve` starts FHIR_HUB_QUEUE_WORKERS of them itself.")
    worker.add_argument("--until-empty", action="store_true", help="stop when no job is ready")
    worker.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="log verbosity")
    worker.set_defaults(func=cmd_worker)

    queue = sub.add_parser("queue", help="the priority queue: status, retry dead jobs",
                           description="Look at or act on the priority queue's jobs.")
    queue_sub = queue.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    status = queue_sub.add_parser("status", help="jobs by state and tier, throughput, time left for the high tier")
    status.add_argument("--data-dir", type=Path, help="embedded store directory (FHIR_HUB_DATA_DIR)")
    status.set_defaults(func=cmd_queue_status)
    retry = queue_sub.add_parser("retry", help="put dead jobs back in the queue (their errors are kept)")
    retry.add_argument("jobs", nargs="*", metavar="JOB_ID", help="the jobs to retry (default: every dead job)")
    retry.add_argument("--data-dir", type=Path, help="embedded store directory (FHIR_HUB_DATA_DIR)")
    retry.set_defaults(func=cmd_queue_retry)

    client = sub.add_parser("client", help="backend clients (SMART Backend Services): register, keys, assertions",
                            description="Hospital systems get tokens from POST /auth/token with an assertion "
                                        "signed by their key. Register a client in the store (or list it in "
                                        "FHIR_HUB_BACKEND_CLIENTS), make its key pair, sign a test assertion.")
    client_sub = client.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    register = client_sub.add_parser("register", help="register or update a client in the store")
    register.add_argument("client_id", help="the client's id (the iss and sub of its assertions)")
    register.add_argument("--scope", required=True, help="the system/ scopes it may be granted, e.g. 'system/*.rs'")
    register.add_argument("--facility", help="its 5-character MoH facility code (none: the hub's operator)")
    register.add_argument("--jwks", type=Path, help="a file with its public keys (JWK Set), e.g. from keygen")
    register.add_argument("--jwks-url", help="an https URL where it publishes its public keys")
    register.add_argument("--data-dir", type=Path, help="embedded store directory (FHIR_HUB_DATA_DIR)")
    register.set_defaults(func=cmd_client_register)
    remove = client_sub.add_parser("remove", help="remove a client registered in the store")
    remove.add_argument("client_id")
    remove.add_argument("--data-dir", type=Path, help="embedded store directory (FHIR_HUB_DATA_DIR)")
    remove.set_defaults(func=cmd_client_remove)
    keygen = client_sub.add_parser("keygen", help="make a client key pair: private PEM to --out, public JWKS printed")
    keygen.add_argument("--alg", choices=("ES384", "RS384"), default="ES384")
    keygen.add_argument("--kid", required=True, help="the key's id, named in the assertions' header")
    keygen.add_argument("--out", type=Path, required=True, help="where to write the private key (never overwritten)")
    keygen.set_defaults(func=cmd_client_keygen)
    assertion = client_sub.add_parser("assertion", help="print a client assertion (to try the flow with curl)")
    assertion.add_argument("client_id")
    assertion.add_argument("--key", type=Path, required=True, help="the client's private key (PEM)")
    assertion.add_argument("--kid", required=True)
    assertion.add_argument("--alg", choices=("ES384", "RS384", "ES256", "RS256"), default="ES384")
    assertion.add_argument("--aud", required=True, help="the token endpoint, e.g. https://hub.example/auth/token")
    assertion.set_defaults(func=cmd_client_assertion)

    spec = sub.add_parser("openapi", help="print or write the OpenAPI document of the REST API",
                          description="Generate the OpenAPI document from the application's routes.")
    spec.add_argument("--output", "-o", help="file to write (default: standard output)")
    spec.set_defaults(func=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"fhir-hub: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
