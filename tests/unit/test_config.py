"""The configuration: defaults, located errors, environment overrides, and relative paths."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from engine.config import Config, config_path, load_config
from engine.errors import ConfigError, ProblemsError

REPO_ROOT = Path(__file__).resolve().parents[2]
BAD_DURATION = "use a number and a unit (s, m, h, d, w), e.g. '30m', '24h', '7d' or '1d12h'"


def write_config(directory: Path, text: str, name: str = "config.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_errors(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={} if environ is None else environ)
    return [str(p) for p in info.value.problems]


# ---- defaults and missing files -------------------------------------------------------------


def test_defaults_when_config_yaml_is_missing(tmp_path: Path) -> None:
    config = load_config(tmp_path / "config.yaml", environ={})
    assert config.base_dir == tmp_path.resolve()
    assert config.database.url == "sqlite:///lifecycle.db"
    assert config.database.echo is False
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'lifecycle.db'}"
    assert config.scheduler.tick == timedelta(minutes=1)
    assert config.defaults.expires == timedelta(days=3)
    assert config.defaults.guide_ttl == timedelta(days=7)
    assert config.defaults.timezone == "UTC"
    assert config.mail.transport == "file"
    assert config.mail.from_address == "Lifecycle <lifecycle@localhost>"
    assert config.mail.reply_to is None
    assert config.mail.domain == "localhost"
    assert config.links == {}
    assert config.rules_dir == tmp_path.resolve() / "rules"
    assert config.templates_dir == tmp_path.resolve() / "templates"
    assert config.outbox_dir == tmp_path.resolve() / "outbox"


def test_empty_config_file_means_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "# nothing set\n")
    config = load_config(path, environ={})
    assert config.scheduler.tick == timedelta(minutes=1)
    assert config.mail.transport == "file"


def test_missing_explicit_non_default_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "production.yaml"
    assert config_errors(missing) == [f"{missing}: config file not found"]


def test_missing_config_yaml_named_by_the_environment_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "config.yaml"
    assert config_errors(missing, {"LIFECYCLE_CONFIG": str(missing)}) == [
        f"{missing}: config file not found"
    ]


def test_config_error_is_a_problems_error() -> None:
    assert issubclass(ConfigError, ProblemsError)


def test_the_repository_config_loads_cleanly() -> None:
    path = REPO_ROOT / "config.yaml"
    config = load_config(path, environ={})
    assert config.base_dir == REPO_ROOT
    assert config.database_url == f"sqlite:///{REPO_ROOT / 'lifecycle.db'}"
    assert config.rules_dir == REPO_ROOT / "rules"
    assert config.templates_dir == REPO_ROOT / "templates"
    assert config.mail.transport in ("file", "console")
    assert "@" in config.mail.from_address


def test_values_from_the_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """\
        database:
          url: postgresql+psycopg://u@db/lifecycle
          echo: true
        scheduler:
          tick: 30s
        defaults:
          expires: 1d12h
          guide_ttl: 2w
          timezone: Europe/Berlin
        mail:
          transport: console
          from: "Airtouch <hello@airtouch.example>"
          reply_to: support@airtouch.example
        links:
          app: https://app.example
        brand:
          name: Example
        api:
          secret_key: s3cret
        """,
    )
    config = load_config(path, environ={})
    assert config.database.echo is True
    assert config.scheduler.tick == timedelta(seconds=30)
    assert config.defaults.expires == timedelta(days=1, hours=12)
    assert config.defaults.guide_ttl == timedelta(weeks=2)
    assert config.defaults.timezone == "Europe/Berlin"
    assert config.mail.transport == "console"
    assert config.mail.from_address == "Airtouch <hello@airtouch.example>"
    assert config.mail.domain == "airtouch.example"
    assert config.mail.reply_to == "support@airtouch.example"
    assert config.links == {"app": "https://app.example"}
    assert config.brand.name == "Example"
    assert config.api.secret_key == "s3cret"


# ---- located errors -------------------------------------------------------------------------


def test_unknown_nested_key_names_file_and_line(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """\
        # a typo in a key
        database:
          urll: sqlite:///x.db
        """,
    )
    assert config_errors(path) == [f"{path}:3: unknown key 'database.urll'"]


def test_unknown_section_names_file_and_line(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """\
        mail:
          transport: file
        mial:
          transport: file
        """,
    )
    assert config_errors(path) == [f"{path}:3: unknown key 'mial'"]


def test_bad_values_name_file_and_line(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """\
        database:
          url: sqlite:///a.db
        mail:
          transport: smtpx
          from: not-an-address
        scheduler:
          tick: 5x
        """,
    )
    problems = config_errors(path)
    assert len(problems) == 3
    assert f"{path}:7: scheduler.tick: bad duration '5x': {BAD_DURATION}" in problems
    assert f"{path}:5: mail.from: not an email address: 'not-an-address'" in problems
    [transport] = [p for p in problems if "mail.transport" in p]
    assert transport.startswith(f"{path}:4: mail.transport: ")
    assert "'file'" in transport
    assert "'console'" in transport


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("mail:\n  transport: smtpx\n", 2, "mail.transport"),
        ("scheduler:\n  tick: 5x\n", 2, "scheduler.tick"),
        ("\n\nmail:\n  from: not-an-address\n", 4, "mail.from"),
        ("defaults:\n  expires: 3\n", 2, "defaults.expires"),
    ],
)
def test_each_bad_value_alone(tmp_path: Path, text: str, line: int, field: str) -> None:
    path = write_config(tmp_path, text)
    [problem] = config_errors(path)
    assert problem.startswith(f"{path}:{line}: {field}: ")


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "database:\n  url: [\n")
    [problem] = config_errors(path)
    assert problem.startswith(f"{path}:3: invalid YAML: ")


def test_duplicate_key_names_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "database:\n  url: sqlite:///a.db\n  url: sqlite:///b.db\n")
    assert config_errors(path) == [f"{path}:3: duplicate key 'url'"]


def test_config_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write_config(tmp_path, "- database\n")
    assert config_errors(path) == [f"{path}:1: the config must be a mapping of sections"]


# ---- the environment ------------------------------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "database:\n  url: sqlite:///a.db\nscheduler:\n  tick: 1m\n")
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/lifecycle"
    config = load_config(
        path, environ={"LIFECYCLE_DATABASE__URL": url, "LIFECYCLE_SCHEDULER__TICK": "5m"}
    )
    assert config.database.url == url
    assert config.database_url == url
    assert config.scheduler.tick == timedelta(minutes=5)


def test_environment_overrides_without_a_file(tmp_path: Path) -> None:
    config = load_config(
        tmp_path / "config.yaml",
        environ={"LIFECYCLE_MAIL__TRANSPORT": "console", "LIFECYCLE_API__SECRET_KEY": "k"},
    )
    assert config.mail.transport == "console"
    assert config.api.secret_key == "k"


def test_environment_keeps_the_other_keys_of_the_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, "mail:\n  transport: console\n  from: a@example.com\n")
    config = load_config(path, environ={"LIFECYCLE_MAIL__REPLY_TO": "b@example.com"})
    assert config.mail.transport == "console"
    assert config.mail.from_address == "a@example.com"
    assert config.mail.reply_to == "b@example.com"


def test_environment_json_value_for_a_mapping(tmp_path: Path) -> None:
    # No "__": a whole section is refused, naming the variable (issue 15), never ignored.
    [problem] = config_errors(
        tmp_path / "config.yaml", {"LIFECYCLE_LINKS": '{"app": "https://a.example"}'}
    )
    assert problem.startswith("environment LIFECYCLE_LINKS: 'links' is a section")
    config = load_config(
        tmp_path / "config.yaml", environ={"LIFECYCLE_LINKS__APP": "https://a.example"}
    )
    assert config.links == {"app": "https://a.example"}


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    config = load_config(
        tmp_path / "config.yaml",
        environ={"HOME": "/root", "LIFECYCLE_CONFIGURED": "x", "OTHER__KEY": "y"},
    )
    assert config.database.url == "sqlite:///lifecycle.db"


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("LIFECYCLE_SCHEDULER__TICK", "5x", "scheduler.tick"),
        ("LIFECYCLE_MAIL__TRANSPORT", "smtpx", "mail.transport"),
        ("LIFECYCLE_MAIL__FROM", "not-an-address", "mail.from"),
    ],
)
def test_bad_environment_value_names_the_variable(
    tmp_path: Path, name: str, value: str, field: str
) -> None:
    path = write_config(tmp_path, "scheduler:\n  tick: 1m\nmail:\n  transport: file\n")
    [problem] = config_errors(path, {name: value})
    assert problem.startswith(f"environment {name}: {field}: ")


def test_bad_environment_duration_message(tmp_path: Path) -> None:
    assert config_errors(tmp_path / "config.yaml", {"LIFECYCLE_SCHEDULER__TICK": "5x"}) == [
        f"environment LIFECYCLE_SCHEDULER__TICK: scheduler.tick: bad duration '5x': {BAD_DURATION}"
    ]


def test_unknown_key_from_the_environment(tmp_path: Path) -> None:
    assert config_errors(tmp_path / "config.yaml", {"LIFECYCLE_DATABASE__URLL": "x"}) == [
        "environment LIFECYCLE_DATABASE__URLL: unknown key 'database.urll'"
    ]


def test_file_and_environment_errors_are_reported_together(tmp_path: Path) -> None:
    path = write_config(tmp_path, "database:\n  urll: x\n")
    problems = config_errors(path, {"LIFECYCLE_SCHEDULER__TICK": "5x"})
    assert f"{path}:2: unknown key 'database.urll'" in problems
    assert any(p.startswith("environment LIFECYCLE_SCHEDULER__TICK: ") for p in problems)
    assert len(problems) == 2


# ---- relative paths -------------------------------------------------------------------------


def test_relative_sqlite_url_is_resolved_against_the_config_directory(tmp_path: Path) -> None:
    directory = tmp_path / "deploy"
    path = write_config(directory, "database:\n  url: sqlite:///data/app.db\n")
    config = load_config(path, environ={})
    assert config.database.url == "sqlite:///data/app.db"
    assert config.database_url == f"sqlite:///{directory.resolve() / 'data' / 'app.db'}"


def test_absolute_sqlite_url_is_unchanged(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'abs.db'}"
    assert url.startswith("sqlite:////")
    path = write_config(tmp_path / "conf", f"database:\n  url: {url}\n")
    assert load_config(path, environ={}).database_url == url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:5432/lifecycle",
        "sqlite:///:memory:",
        "sqlite://",
    ],
)
def test_other_urls_are_unchanged(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path, f"database:\n  url: '{url}'\n")
    assert load_config(path, environ={}).database_url == url


def test_directories_resolve_relative_to_the_config_directory(tmp_path: Path) -> None:
    directory = tmp_path / "site"
    absolute_outbox = tmp_path / "mail-out"
    path = write_config(
        directory,
        f"""\
        paths:
          rules: my-rules
          templates: ../shared/templates
        mail:
          outbox: {absolute_outbox}
        """,
    )
    config = load_config(path, environ={})
    base = directory.resolve()
    assert config.base_dir == base
    assert config.rules_dir == base / "my-rules"
    assert config.templates_dir == base / "../shared/templates"
    assert config.outbox_dir == absolute_outbox


def test_resolve_keeps_absolute_paths(tmp_path: Path) -> None:
    config = Config(base_dir=tmp_path)
    assert config.resolve(Path("/etc/x")) == Path("/etc/x")
    assert config.resolve(Path("x")) == tmp_path / "x"


# ---- which file -----------------------------------------------------------------------------


def test_config_path_precedence() -> None:
    environ = {"LIFECYCLE_CONFIG": "/from/env.yaml"}
    assert config_path("/explicit.yaml", environ) == Path("/explicit.yaml")
    assert config_path(None, environ) == Path("/from/env.yaml")
    assert config_path(None, {}) == Path("config.yaml")
    assert config_path("", {"LIFECYCLE_CONFIG": ""}) == Path("config.yaml")


def test_an_explicit_config_path_must_exist_even_if_named_config_yaml(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "config.yaml"
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(missing, environ={}, required=True)
    assert load_config(missing, environ={}, required=False).database.url


# ---- the scheduler ------------------------------------------------------------------------


def test_the_scheduler_defaults_and_the_lease_of_three_ticks(tmp_path: Path) -> None:
    path = write_config(tmp_path, "scheduler: {tick: 2m}\n")
    scheduler = load_config(path, environ={}).scheduler
    assert scheduler.dispatch == timedelta(seconds=10)
    assert scheduler.shutdown_grace == timedelta(seconds=30)
    assert scheduler.lease_period == timedelta(minutes=6)


def test_a_lease_no_longer_than_a_tick_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "database: {}\nscheduler:\n  tick: 1m\n  lease: 1m\n")
    (problem,) = config_errors(path)
    assert problem.startswith(f"{path}:4: scheduler.lease: must be longer than scheduler.tick")


def test_a_lease_from_the_environment_is_blamed_on_its_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, "scheduler: {tick: 1m}\n")
    (problem,) = config_errors(path, {"LIFECYCLE_SCHEDULER__LEASE": "30s"})
    assert problem.startswith("environment LIFECYCLE_SCHEDULER__LEASE: scheduler.lease: must be")


def test_intervals_must_be_positive(tmp_path: Path) -> None:
    path = write_config(tmp_path, "scheduler:\n  dispatch: 0s\n")
    assert config_errors(path) == [f"{path}:2: scheduler.dispatch: must be longer than 0"]
