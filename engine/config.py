"""The configuration: `config.yaml` validated by pydantic, overridden by
`LIFECYCLE_<SECTION>__<KEY>` environment variables. Errors name the file and line, or the
environment variable.

pydantic-settings could merge the environment, but it loses where a value came from; this
module keeps that so that every error says where to look."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from engine.durations import parse_duration
from engine.errors import ConfigError, Problem
from engine.rules.quiet_hours import QuietHours
from engine.rules.webhooks import WebhookPolicy
from engine.rules.yamlsource import Located, load_yaml, read_source

ENV_PREFIX = "LIFECYCLE_"
CONFIG_ENV = "LIFECYCLE_CONFIG"
DEFAULT_CONFIG = "config.yaml"
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
OFF = ("false", "off", "no")  # what an environment variable says for YAML's `false`


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# The databases the engine runs on, and the DBAPI drivers it ships (no driver: the default).
DRIVERS = {"sqlite": ("pysqlite",), "postgresql": ("psycopg",)}
SUPPORTED_DATABASES = (
    "the supported databases are sqlite (sqlite:///PATH) and postgresql "
    "(postgresql://USER@HOST:PORT/DATABASE or postgresql+psycopg://...)"
)


class DatabaseConfig(_Section):
    url: str = "sqlite:///lifecycle.db"
    echo: bool = False
    # A team's own Alembic revisions, each directory a branch of its own next to the
    # packaged one (relative to the config file): `lifecycle db` and every first open apply them.
    migrations: list[Path] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        # Refused here, so that `check` says it, not a traceback when a command connects.
        problem = database_url_problem(value)
        if problem is not None:
            raise ValueError(f"{problem}: {SUPPORTED_DATABASES}")
        return value


def database_url_problem(url: str) -> str | None:
    """Why the engine cannot use this database URL, or None. Never quotes the URL: it may
    hold a password."""
    if not url.strip():
        return "empty"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "not a database URL"
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in DRIVERS:
        return f"unsupported database {backend!r}"
    if driver and driver not in DRIVERS[backend]:
        return f"unsupported driver {driver!r} for {backend}"
    return None


class PathsConfig(_Section):
    rules: Path = Path("rules")
    templates: Path = Path("templates")


class SchedulerConfig(_Section):
    tick: Duration = timedelta(minutes=1)  # how often rules are evaluated
    dispatch: Duration = timedelta(seconds=10)  # how often due emails are sent
    # A stop (SIGTERM/SIGINT) waits this long for the sends in flight, then exits anyway.
    shutdown_grace: Duration = timedelta(seconds=30)
    # Replicas on one database: a rule's evaluator holds it this long without renewing it;
    # None is three ticks. A dead replica's rules pass to another within this period.
    lease: Duration | None = None

    @field_validator("tick", "dispatch")
    @classmethod
    def _interval(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0")
        return value

    @field_validator("lease")
    @classmethod
    def _lease_outlives_a_tick(
        cls, value: timedelta | None, info: ValidationInfo
    ) -> timedelta | None:
        # A field validator, not a model one, so that the error names `scheduler.lease` and
        # where its value came from (its line, or its environment variable).
        tick = info.data.get("tick")
        if value is not None and tick is not None and value <= tick:
            raise ValueError(
                f"must be longer than scheduler.tick ({tick}), or the replica evaluating a "
                "rule loses it between two ticks"
            )
        return value

    @property
    def lease_period(self) -> timedelta:
        return self.lease if self.lease is not None else 3 * self.tick


class DefaultsConfig(_Section):
    expires: Duration = timedelta(days=3)
    guide_ttl: Duration = timedelta(days=7)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        # Users' own unknown zones fall back to this one: it must itself be known.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'UTC', "
                "'Europe/Berlin' or 'America/New_York'"
            ) from None
        return value


MAX_SMTP_SESSIONS = 16


class SmtpConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 587
    username: str | None = None
    password: str | None = None
    security: Literal["starttls", "ssl", "none"] = "starttls"
    verify_certificate: bool = True  # turning this off is explicit, and logged
    ca_file: Path | None = None  # trust a private CA in addition to the system's
    timeout: Duration = timedelta(seconds=30)
    local_hostname: str | None = None
    # SMTP sessions the dispatcher sends over in parallel, each on its own connection: at
    # most one message per session is in doubt after a crash. Bounded: relays limit the
    # connections a client may hold (often 10 to 20).
    sessions: int = Field(default=4, ge=1, le=MAX_SMTP_SESSIONS)

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0")
        return value


class RetryConfig(_Section):
    """4xx replies and connection failures are retried with exponential backoff and jitter."""

    first_delay: Duration = timedelta(minutes=1)
    max_delay: Duration = timedelta(hours=1)
    give_up_after: Duration = timedelta(hours=24)
    resend_unknown: bool = False  # after a crash mid-send: at-most-once unless this is set
    sending_lease: Duration = timedelta(minutes=10)  # a claim older than this was abandoned


def _quiet_hours(value: Any) -> Any:
    """`false` means none, as it does in rules (from the environment: "false" or "off")."""
    if value is False or (isinstance(value, str) and value.strip().lower() in OFF):
        return None
    if value is not None and not isinstance(value, dict | QuietHours):
        raise ValueError(
            f"{value!r} is not a window: write {{start: '21:00', end: '08:00'}} "
            "(quote the times), or false for none"
        )
    return value


OptionalQuietHours = Annotated[QuietHours | None, BeforeValidator(_quiet_hours)]


class TrackingConfig(_Section):
    """Opens and clicks (off by default: a pixel and rewritten links are a privacy choice the
    operator makes). An open within `machine_open_seconds` of the hand-over, or from a known
    prefetching proxy, is recorded with `machine: true`."""

    opens: bool = False
    clicks: bool = False
    machine_open_seconds: float = Field(default=5.0, ge=0)

    @property
    def enabled(self) -> bool:
        return self.opens or self.clicks


class MailConfig(_Section):
    transport: Literal["file", "console", "smtp"] = "file"
    from_address: str = Field(default="Lifecycle <lifecycle@localhost>", alias="from")
    reply_to: str | None = None
    outbox: Path = Path("outbox")
    smtp: SmtpConfig = SmtpConfig()
    retry: RetryConfig = RetryConfig()
    unsubscribe_mailto: str | None = None  # also offered in List-Unsubscribe
    quiet_hours: OptionalQuietHours = None  # in each user's timezone; rules may override
    daily_cap: int | None = Field(default=None, ge=1)  # emails per user per rolling 24h
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError(f"not an email address: {value!r}")
        return value

    @property
    def domain(self) -> str:
        return parseaddr(self.from_address)[1].rpartition("@")[2]


class BrandConfig(_Section):
    """Who the emails are from, shown in every footer (anti-spam laws ask for an address)."""

    name: str = "Airtouch"
    postal_address: str = "Airtouch Inc., 1 Example Street, San Francisco, CA 94105"
    support_email: str = "support@airtouch.example"


class ApiConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = "change-me"  # `run` and `api` refuse it outside development
    # Development only: accept a weak secret_key (forgeable links) with a non-loopback setup.
    allow_insecure_dev_key: bool = False
    api_keys: list[str] = Field(default_factory=list)  # server keys: every user's guides
    # Per-user guide tokens (`lifecycle guide-token`), signed with secret_key: what a browser
    # holds instead of a key. Off by default, so that the shipped secret opens nothing.
    guide_tokens: bool = False
    write_keys: list[str] = Field(default_factory=list)  # for event ingestion
    unsubscribe_max_age: Duration = timedelta(days=180)
    # Ingestion requests per second per write key (a token bucket); None: no limit.
    rate_limit_per_second: float | None = Field(default=None, gt=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)  # default: one second's worth


WEBHOOK_SECRET_PREFIX = "whsec_"


class WebhooksConfig(_Section):
    """The webhook channel (`send.webhook` in rules): how requests are signed (Standard
    Webhooks), where plain http may go, the named endpoints rules refer to as `$name`, and
    how long a request and a dispatch pass may take."""

    # `whsec_` + base64 of 24 to 64 random bytes; set LIFECYCLE_WEBHOOKS__SECRET. The one
    # config.yaml ships is public: `run` and `tick` refuse it outside development.
    secret: str = ""
    allow_insecure_dev_secret: bool = False  # development only: sign with a weak secret
    allow_http: list[str] = Field(default_factory=list)  # hosts beyond loopback
    endpoints: dict[str, str] = Field(default_factory=dict)  # name -> URL (often a secret)
    connect_timeout: Duration = timedelta(seconds=5)
    read_timeout: Duration = timedelta(seconds=10)
    # One dispatch pass stops claiming after this long: a slow receiver delays only its own
    # queue, and a stopping daemon is never held for long.
    pass_time: Duration = timedelta(seconds=30)
    retry: RetryConfig = RetryConfig(first_delay=timedelta(seconds=30))

    @field_validator("secret")
    @classmethod
    def _secret_form(cls, value: str) -> str:
        # Never quotes the value: it is a secret.
        if value and not _is_whsec(value):
            raise ValueError(
                f"must be {WEBHOOK_SECRET_PREFIX} followed by base64 (e.g. "
                "python -c 'import base64, secrets; "
                'print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())\')'
            )
        return value

    @field_validator("connect_timeout", "read_timeout", "pass_time")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0")
        return value

    @field_validator("allow_http")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [host.strip().lower() for host in value if host.strip()]


def _is_whsec(value: str) -> bool:
    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        return False
    try:
        return bool(base64.b64decode(value[len(WEBHOOK_SECRET_PREFIX) :], validate=True))
    except ValueError:
        return False


def _trait_names(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


TraitNames = Annotated[
    tuple[Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)], ...],
    BeforeValidator(_trait_names),
]


class IngestConfig(_Section):
    """Which identify traits fill the user's columns (the first one present wins; the others
    stay in `traits`). The defaults are those of engine.segment.TraitMapping."""

    persona: TraitNames = ("persona",)
    signup_source: TraitNames = ("signup_source", "signupSource")
    email: TraitNames = ("email",)
    timezone: TraitNames = ("timezone",)
    account_id: TraitNames = ("account_id", "accountId", "company_id", "groupId")
    invited_by: TraitNames = ("invited_by", "invitedBy")
    signed_up_at: TraitNames = ("createdAt", "created_at")


class ReportEvents(_Section):
    """The product's event names for the playbook's questions (Airtouch's by default): the
    engine never hard-codes a product's vocabulary, so another product renames them here."""

    workflow_created: str = "workflow_saved"  # "first workflow created" = its first save
    workflow_run: str = "workflow_run"
    workflow_started: str = "workflow_started"
    invite_sent: str = "invite_sent"
    connection_created: str = "connection_created"
    email_verified: str = "email_verified"
    login: str = "login"


class ActiveConfig(_Section):
    """A user is active when they did `event` within `window` before the report's end."""

    event: str = "login"
    window: Duration = timedelta(days=30)


def _names(*names: str) -> Any:
    return Field(default_factory=lambda: list(names), min_length=1)


class ReportsConfig(_Section):
    events: ReportEvents = ReportEvents()
    # The "aha" moment (the playbook: an active, running workflow), reached within
    # `activation_within` of signup: activation (PAR, TTFV) and activation cohorts.
    activation_event: str = "workflow_run"
    activation_within: Duration = timedelta(days=7)
    # Product-qualified leads: users (and accounts) that reach the activation event within
    # this long of their signup (an account: of its first member's signup).
    trial_length: Duration = timedelta(days=14)
    invited_source: str = "invited"  # the signup_source of users a colleague invited
    key_events: list[str] = _names(
        "connection_created", "workflow_started", "workflow_saved", "workflow_run", "invite_sent"
    )
    active: ActiveConfig = ActiveConfig()
    features: list[str] = _names(
        "connection_created", "workflow_saved", "workflow_run", "invite_sent"
    )
    retention_events: list[str] = _names("login", "workflow_run")  # "active in month k"
    funnel: list[str] = _names(
        "email_verified", "connection_created", "workflow_started", "workflow_saved", "workflow_run"
    )

    @field_validator("trial_length")
    @classmethod
    def _trial(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0")
        return value


ConsoleRole = Literal["read_only", "operator"]
USERNAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"


class ConsoleUser(_Section):
    """A console login: the hash `lifecycle hash-password` prints (never the password)."""

    password_hash: str = Field(min_length=1, max_length=512)
    role: ConsoleRole = "read_only"


class ConsoleConfig(_Section):
    """The web console at /console. It is served once it has a way to log in: `users`, or
    `upstream_header` set by a reverse proxy that authenticates people itself."""

    users: dict[Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)], ConsoleUser] = Field(
        default_factory=dict
    )
    # Signs session cookies; `run` and `api` refuse a weak one outside development.
    secret_key: str = ""
    session_ttl: Duration = timedelta(hours=8)
    # A header naming the person (e.g. X-Forwarded-User), trusted only from these peers:
    # off by default, since anyone who reaches the port directly could send it.
    upstream_header: str | None = None
    upstream_trusted: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    upstream_role: ConsoleRole = "read_only"  # for people the header names but `users` lacks

    @field_validator("session_ttl")
    @classmethod
    def _ttl(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.users) or bool(self.upstream_header)


class Config(_Section):
    database: DatabaseConfig = DatabaseConfig()
    paths: PathsConfig = PathsConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    defaults: DefaultsConfig = DefaultsConfig()
    mail: MailConfig = MailConfig()
    links: dict[str, str] = Field(default_factory=dict)
    brand: BrandConfig = BrandConfig()
    api: ApiConfig = ApiConfig()
    ingest: IngestConfig = IngestConfig()
    reports: ReportsConfig = ReportsConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    console: ConsoleConfig = ConsoleConfig()
    base_dir: Path = Field(default=Path("."), exclude=True)

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.base_dir / path

    @property
    def rules_dir(self) -> Path:
        return self.resolve(self.paths.rules)

    @property
    def templates_dir(self) -> Path:
        return self.resolve(self.paths.templates)

    @property
    def outbox_dir(self) -> Path:
        return self.resolve(self.mail.outbox)

    def webhook_policy(self, templates: Collection[str] | None = None) -> WebhookPolicy:
        """What rules may do with webhooks here; `templates`: the body templates there are
        (None: not checked)."""
        hooks = self.webhooks
        return WebhookPolicy(frozenset(hooks.allow_http), dict(hooks.endpoints), templates)

    @property
    def migration_dirs(self) -> list[Path]:
        return [self.resolve(path) for path in self.database.migrations]

    @property
    def database_url(self) -> str:
        """SQLite paths are relative to the config file, not to the working directory."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix) :]
            if rest and not rest.startswith(":memory:"):
                return prefix + str((self.base_dir / rest).resolve())
        return url


def config_path(explicit: str | None, environ: Mapping[str, str]) -> Path:
    return Path(explicit or environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def config_required(explicit: str | None, environ: Mapping[str, str]) -> bool:
    """Only the implicit default may be missing (then every setting has its default)."""
    return bool(explicit or environ.get(CONFIG_ENV))


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, *, required: bool | None = None
) -> Config:
    """Read, overlay the environment, validate. A missing file that is not `required` means
    all defaults (by default only `./config.yaml` may be missing). Every problem is reported
    at once, each where it comes from: the file and line, or the environment variable."""
    environ = os.environ if environ is None else environ
    data, located = _read_file(path, environ, required)
    overrides, problems = environment_overrides(environ)
    origins = _overlay(data, overrides)
    data["base_dir"] = path.resolve().parent
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([*problems, *_problems(exc, path, located, origins)]) from None
    if problems:
        raise ConfigError(problems)
    return config


def _read_file(
    path: Path, environ: Mapping[str, str], required: bool | None
) -> tuple[dict[str, Any], Located | None]:
    if not path.exists():
        if required or (
            required is None and (path.name != DEFAULT_CONFIG or CONFIG_ENV in environ)
        ):
            raise ConfigError([Problem("config file not found", str(path))])
        return {}, None
    text = read_source(path)
    if isinstance(text, Problem):
        raise ConfigError([text])
    located, problems = load_yaml(text, str(path))
    if problems:
        raise ConfigError(problems)
    if located is None or located.data is None:
        return {}, located
    if not isinstance(located.data, dict):
        raise ConfigError([Problem("the config must be a mapping of sections", str(path), 1)])
    return located.data, located


# ---- the environment ------------------------------------------------------------------------

# What a setting holds, for the environment: a section (a model) or a mapping take keys
# below them and JSON; a list takes JSON; a single value is taken as written, never as JSON
# (a secret may well start with a bracket).
Kind = type[BaseModel] | Literal["mapping", "list", "value"]
JSON_LIST = """'["a", "b"]'"""
JSON_MAPPING = """'{"key": "value"}'"""


@dataclass(frozen=True)
class Override:
    """One `LIFECYCLE_<SECTION>__<KEY>` variable: the keys it sets, and the value."""

    name: str
    keys: tuple[str, ...]
    value: Any


def environment_overrides(environ: Mapping[str, str]) -> tuple[list[Override], list[Problem]]:
    """The variables that set config keys, and a problem for each one that targets no key
    (or a whole section, or holds bad JSON), named by the variable."""
    overrides: list[Override] = []
    problems: list[Problem] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        keys = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        try:
            if len(keys) == 1:
                _refuse_a_whole_section(name, keys[0])
                continue  # LIFECYCLE_CONFIG and the like: not a config key
            kind = _target(keys)
            overrides.append(Override(name, keys, _env_value(name, keys, raw, kind)))
        except ValueError as exc:
            problems.append(Problem(str(exc), f"environment {name}"))
    return overrides, problems


def _refuse_a_whole_section(name: str, key: str) -> None:
    """`LIFECYCLE_API=1` would silently do nothing: say how to set the section's keys."""
    if _field(Config, key) is not None:
        raise ValueError(
            f"{key!r} is a section: set its keys one by one, as {name}__<KEY> "
            "(see the README's Configuration section)"
        )


def _target(keys: tuple[str, ...]) -> Kind:
    """What the setting at `keys` holds; ValueError when no setting is there."""
    if "" in keys:
        raise ValueError("empty key: separate the section and each key with one '__'")
    node: Kind = Config
    for depth, key in enumerate(keys):
        if node == "mapping":  # any name (links): it holds a single value
            node = "value"
            continue
        if node == "list":
            raise ValueError(f"{'.'.join(keys[:depth])!r} is a list: set it whole, as JSON")
        if not isinstance(node, type):
            raise ValueError(f"{'.'.join(keys[:depth])!r} is a single value, not a section")
        field = _field(node, key)
        if field is None:
            raise ValueError(f"unknown key {'.'.join(keys[: depth + 1])!r}")
        node = _kind(field.annotation)
    return node


def _field(model: type[BaseModel], key: str) -> FieldInfo | None:
    for name, field in model.model_fields.items():
        if key in (name, field.alias) and not field.exclude:
            return field
    return None


def _kind(annotation: Any) -> Kind:
    for candidate in (annotation, *get_args(annotation)):  # X | None: look at X
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        origin = get_origin(candidate)
        if origin is dict:
            return "mapping"
        if origin in (list, tuple):
            return "list"
    return "value"


def _env_value(name: str, keys: tuple[str, ...], raw: str, kind: Kind) -> Any:
    if kind == "value" or not raw.lstrip().startswith(("[", "{")):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        example = JSON_LIST if kind == "list" else JSON_MAPPING
        raise ValueError(
            f"{'.'.join(keys)}: not valid JSON ({exc.msg} at column {exc.colno}): lists and "
            f"mappings from the environment are JSON, e.g. {name}={example}"
        ) from None


def _overlay(data: dict[str, Any], overrides: list[Override]) -> dict[tuple[str, ...], str]:
    """Set each override into the file's data; where each value came from, by its keys."""
    origins: dict[tuple[str, ...], str] = {}
    for override in overrides:
        target = data
        for key in override.keys[:-1]:
            child = target.get(key)
            if not isinstance(child, dict):  # the environment wins over the file's value
                child = {}
                target[key] = child
            target = child
        target[override.keys[-1]] = override.value
        origins[override.keys] = override.name
    return origins


# ---- validation errors ----------------------------------------------------------------------


def _problems(
    exc: ValidationError,
    path: Path,
    located: Located | None,
    origins: dict[tuple[str, ...], str],
) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = tuple(str(p) for p in error["loc"])
        field = ".".join(loc)
        if error["type"] == "extra_forbidden":
            message = f"unknown key {field!r}"
        else:
            message = f"{field}: {str(error['msg']).removeprefix('Value error, ')}"
        env = _origin(loc, origins)
        if env is not None:
            problems.append(Problem(message + _json_hint(error["type"], env), f"environment {env}"))
        else:
            line = located.line(loc) if located is not None else None
            problems.append(Problem(message, str(path), line))
    return problems


def _origin(loc: tuple[str, ...], origins: dict[tuple[str, ...], str]) -> str | None:
    """The variable that set the value at `loc` (or a value around it), if one did."""
    matches = [keys for keys in origins if loc[: len(keys)] == keys]
    return origins[max(matches, key=len)] if matches else None


def _json_hint(error_type: str, name: str) -> str:
    if error_type in ("list_type", "tuple_type"):
        return f" (write a list as JSON, e.g. {name}={JSON_LIST})"
    if error_type in ("dict_type", "model_type"):
        return f" (write a mapping as JSON, e.g. {name}={JSON_MAPPING})"
    return ""
