"""Settings read from the environment.

Everything an operator may change is an environment variable named ``FHIR_HUB_*`` with a safe default, so
``make run`` works with none set and a deployment changes behaviour without touching code. Settings are
read once into an immutable object that is passed around explicitly (no module-level globals), which keeps
tests free to run several differently configured apps in one process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from adapters.normalize import is_facility_code
from fhir_hub.fhir.instant import DEFAULT_TIME_ZONE, load_time_zone
from fhir_hub.matching.model import Model
from fhir_hub.search.limits import SearchLimits

ENV_PREFIX = "FHIR_HUB_"
DEV_ISSUER = "urn:fhir-hub:development"
DEV_AUDIENCE = "urn:fhir-hub"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?")


class ConfigError(ValueError):
    """A setting has a value the hub cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    # Store: with no URI the hub starts its own embedded nx-27017 server under data_dir.
    mongodb_uri: str | None = None
    db_name: str = "fhir_hub"
    data_dir: Path = field(default_factory=lambda: Path("var"))
    # HTTP
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str | None = None  # public base URL when behind a proxy; otherwise taken from the request
    # Browser apps' origins allowed to call the hub (CORS): * (any: tokens, never cookies, carry the
    # access), none (off), or origins separated by commas (https://app.example.vn)
    cors_origins: str = "*"
    # Limits against accidental or hostile input
    max_body_bytes: int = 10 * 1024 * 1024
    default_count: int = 20
    max_count: int = 1000
    max_search_params: int = 30
    max_chain_depth: int = 4  # chained parameters and nested _has, each a search of its own
    max_bundle_entries: int = 10_000
    request_budget_ms: int = 30_000  # a read still running after this is stopped (503): it holds the store
    # Processes that validate a large transaction's resources while the hub stores them (0: in process only)
    validation_processes: int = 1
    # Security. "production" refuses to start without a configured JWKS, issuer and audience; "development"
    # signs its own tokens with a key generated in data_dir (``fhir-hub token``).
    env: str = "development"
    jwks_file: Path | None = None
    jwks_url: str | None = None
    token_issuer: str | None = None
    token_audience: str | None = None
    clock_skew_seconds: int = 60
    max_token_bytes: int = 8192
    max_token_lifetime_seconds: int = 3600  # exp - iat and exp - now; a stolen token is usable this long
    source_prefix: str = "urn:fhir-hub"  # meta.source of a facility's records: <prefix>:facility:<code>
    # Tokens for hospital systems (SMART Backend Services, auth/backend.py): the token endpoint discovery
    # advertises (unset: the hub's own /auth/token), the JSON file registering backend clients and their
    # public keys, the PEM key the hub signs its own access tokens with (development: its generated key),
    # and how long those tokens live
    token_endpoint: str | None = None
    # the city's authorization server's authorize endpoint (SMART App Launch: residents' and clinicians' apps);
    # unset, the hub advertises only the client credentials grant it serves itself
    authorization_endpoint: str | None = None
    backend_clients: Path | None = None
    token_signing_key: Path | None = None
    issued_token_seconds: int = 300
    # Ingestion: a folder of CSV mapping files (*.toml), one per onboarded clinic (adapters/csv/LAYOUT.md)
    csv_mappings: Path | None = None
    # Ingestion limits: repetitions of one HL7 v2 field (more rejects that message, naming the field), and
    # processes that parse and map payloads off the event loop (0: a thread of the hub's process instead)
    hl7v2_max_repetitions: int = 100
    ingest_processes: int = 1
    # Other facilities a token's facility may send payloads for, "79001=79415,79416;79002=79417" (none by
    # default: a payload naming another facility than the token's is refused)
    ingest_on_behalf_of: str = ""
    # Patient matching (issue 16): link each facility's Patient to one master record per person; the two
    # thresholds in bits (above the upper: linked automatically; between: review list), model.json's by default
    link_patients: bool = True
    match_upper: float | None = None
    match_lower: float | None = None
    # Consent (issue 17): every read of personal data obeys consent/policy.json and the residents' Consents.
    # Off only to measure what enforcement costs (``python -m bench consent``): never in production.
    enforce_consent: bool = True
    # The priority queue (issue 18): worker processes ``fhir-hub serve`` starts beside itself (0: none; run
    # ``fhir-hub worker`` elsewhere), a claimed job's lease (workers renew it every third of it), failed
    # attempts before a job goes to the dead letters, and the first back-off (doubled at each failure)
    queue_workers: int = 1
    queue_lease_seconds: int = 30
    queue_max_attempts: int = 5
    queue_backoff_ms: int = 1000
    # Off queues every backfilled record at one priority, in arrival order (the risk tier is still recorded):
    # only to measure what priority buys (``python -m bench backfill``), never in production
    queue_by_risk: bool = True
    # records committed together in one store transaction, by ``$ingest`` and by a worker (which claims up to
    # this many jobs at once): each still stored all or nothing, as if alone; 1 commits them one by one
    records_per_transaction: int = 8
    # how old a conditional or matching claim must be before another process takes it over (its holder
    # died: a killed worker's claims block those records' writes this long); longer than any request
    claim_stale_seconds: int = 120
    # where the hub's processes on an embedded (local) nx-27017 keep the lock files that keep one process's
    # writes out of another's transaction (store/store_lock.py); every process of one store must agree.
    # None: a directory of the user's under the system's temporary directory
    store_lock_dir: Path | None = None
    # The zone dates and times without one are read in, in stored resources and in search values (an IANA
    # name; fhir/instant.py). Changing it makes the next start recompute the search index.
    time_zone: str = DEFAULT_TIME_ZONE
    # Operations
    log_level: str = "info"
    audit_flush_ms: int = 50

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``FHIR_HUB_*`` variables; explicit keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    @property
    def served_base_url(self) -> str:
        """The base URL when no request says it (the CLI, ingestion and queue jobs): the configured one, else
        where ``fhir-hub serve`` listens."""
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        """``FHIR_HUB_CORS_ORIGINS`` read: ("*",) any origin, () CORS off, else the origins named."""
        value = self.cors_origins.strip()
        if value == "*":
            return ("*",)
        if value.lower() == "none":
            return ()
        origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ConfigError(f"{ENV_PREFIX}CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port]); "
                                  "use *, none, or origins separated by commas")
        return origins

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def search_limits(self) -> SearchLimits:
        return SearchLimits(self.default_count, self.max_count, self.max_search_params, self.max_chain_depth)

    @property
    def on_behalf_of(self) -> dict[str, frozenset[str]]:
        """``FHIR_HUB_INGEST_ON_BEHALF_OF`` read: token facility -> the other facility codes it may send for."""
        return _facility_delegations(self.ingest_on_behalf_of)

    @property
    def match_model_thresholds(self) -> tuple[float, float]:
        default = Model.default()
        return (self.match_upper if self.match_upper is not None else default.upper,
                self.match_lower if self.match_lower is not None else default.lower)

    def match_model(self) -> Model:
        upper, lower = self.match_model_thresholds
        return Model.default().with_thresholds(upper=upper, lower=lower)

    @property
    def issuer(self) -> str:
        return self.token_issuer or DEV_ISSUER

    @property
    def audience(self) -> str:
        return self.token_audience or DEV_AUDIENCE

    @property
    def external_keys(self) -> bool:
        """Whether tokens come from an authorization server of its own (a JWKS is configured)."""
        return self.jwks_file is not None or self.jwks_url is not None

    @property
    def own_issuer(self) -> str:
        """The ``iss`` of tokens the hub signs itself: the configured issuer when the hub is the only one;
        beside an authorization server, the hub's base URL, so that neither can pass for the other."""
        return self.served_base_url if self.external_keys else self.issuer

    def check(self) -> None:
        for name in ("max_body_bytes", "default_count", "max_count", "max_search_params", "max_chain_depth",
                     "max_bundle_entries", "request_budget_ms", "max_token_bytes", "max_token_lifetime_seconds",
                     "audit_flush_ms", "hl7v2_max_repetitions", "queue_lease_seconds", "queue_max_attempts",
                     "queue_backoff_ms", "claim_stale_seconds", "records_per_transaction", "issued_token_seconds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a positive integer")
        if self.validation_processes < 0:
            raise ConfigError(f"{ENV_PREFIX}VALIDATION_PROCESSES must not be negative")
        if self.ingest_processes < 0:
            raise ConfigError(f"{ENV_PREFIX}INGEST_PROCESSES must not be negative")
        if self.queue_workers < 0:
            raise ConfigError(f"{ENV_PREFIX}QUEUE_WORKERS must not be negative")
        _facility_delegations(self.ingest_on_behalf_of)  # a value it cannot read stops start-up, named
        _ = self.cors_origin_list  # likewise
        upper, lower = self.match_model_thresholds
        if lower > upper:
            raise ConfigError(f"{ENV_PREFIX}MATCH_LOWER ({lower}) must not be above {ENV_PREFIX}MATCH_UPPER ({upper})")
        if self.clock_skew_seconds < 0:
            raise ConfigError(f"{ENV_PREFIX}CLOCK_SKEW_SECONDS must not be negative")
        if self.env not in ("development", "production"):
            raise ConfigError(f"{ENV_PREFIX}ENV must be development or production, not {self.env!r}")
        if self.issued_token_seconds > self.max_token_lifetime_seconds:
            raise ConfigError(f"{ENV_PREFIX}ISSUED_TOKEN_SECONDS must not exceed "
                              f"{ENV_PREFIX}MAX_TOKEN_LIFETIME_SECONDS")
        if self.authorization_endpoint is not None and self.token_endpoint is None:
            raise ConfigError(f"{ENV_PREFIX}AUTHORIZATION_ENDPOINT needs {ENV_PREFIX}TOKEN_ENDPOINT: the hub's own "
                              "token endpoint serves only the client credentials grant")
        if self.token_endpoint is not None and not self.token_endpoint.startswith("https://") and self.production:
            raise ConfigError(f"{ENV_PREFIX}TOKEN_ENDPOINT must be an https URL in production")
        if self.production:
            if self.backend_clients is not None and self.token_signing_key is None:
                raise ConfigError(f"production refuses {ENV_PREFIX}BACKEND_CLIENTS without "
                                  f"{ENV_PREFIX}TOKEN_SIGNING_KEY (the key the hub signs its tokens with)")
            missing = [name for name, value in (("JWKS_FILE or JWKS_URL or TOKEN_SIGNING_KEY",
                                                 self.jwks_file or self.jwks_url or self.token_signing_key),
                                                ("TOKEN_ISSUER", self.token_issuer),
                                                ("TOKEN_AUDIENCE", self.token_audience)) if not value]
            if missing:
                raise ConfigError("production refuses to start without " + ", ".join(
                    ENV_PREFIX + m.replace(" or ", " or " + ENV_PREFIX) for m in missing))
            if not self.enforce_consent:
                raise ConfigError(f"production refuses {ENV_PREFIX}ENFORCE_CONSENT=false: every read must obey consent")
            if not self.queue_by_risk:
                raise ConfigError(f"production refuses {ENV_PREFIX}QUEUE_BY_RISK=false: the most at risk come first")
        try:
            load_time_zone(self.time_zone)
        except ValueError as error:
            raise ConfigError(f"{ENV_PREFIX}TIME_ZONE: {error}") from None
        if self.default_count > self.max_count:
            raise ConfigError(f"{ENV_PREFIX}DEFAULT_COUNT must not exceed {ENV_PREFIX}MAX_COUNT")
        if not 0 < self.port < 65536:
            raise ConfigError(f"{ENV_PREFIX}PORT must be between 1 and 65535")

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _facility_delegations(text: str) -> dict[str, frozenset[str]]:
    """``79001=79415,79416;79002=79417`` -> {"79001": {"79415", "79416"}, "79002": {"79417"}}."""
    found: dict[str, frozenset[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        sender, _, others = part.partition("=")
        codes = [c.strip() for c in others.split(",") if c.strip()]
        if not is_facility_code(sender.strip()) or not codes or not all(is_facility_code(c) for c in codes):
            raise ConfigError(f"{ENV_PREFIX}INGEST_ON_BEHALF_OF: {part!r} is not FACILITY=CODE,CODE (5-character MoH "
                              "facility codes, e.g. 79001=79415,79416;79002=79417)")
        found[sender.strip()] = found.get(sender.strip(), frozenset()) | frozenset(codes)
    return found


def _convert(name: str, raw: str, annotation: object) -> object:
    text = str(annotation)
    if text.startswith("bool"):
        if raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if raw.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} must be true or false")
    if text.startswith("float"):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a number") from None
    try:
        if text.startswith("int"):
            return int(raw)
        if text.startswith("Path"):
            return Path(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a whole number") from None
    return raw
