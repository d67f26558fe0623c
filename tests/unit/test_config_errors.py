"""Config errors name the right place (issue 15, item 7): every problem from the environment
names its variable, never a line of the file it does not come from; a database the engine
cannot use, an unknown time zone and a bad JSON list are refused at load time; `quiet_hours:
false` means no quiet hours, as it does in rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError

SUPPORTED = "the supported databases are sqlite (sqlite:///PATH) and postgresql"
FILE = """\
database:
  url: sqlite:///a.db
scheduler:
  tick: 1m
api:
  port: 8000
"""


def write(directory: Path, text: str = FILE) -> Path:
    path = directory / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors(path: Path, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ)
    return [str(p) for p in info.value.problems]


# ---- unknown keys and sections from the environment -------------------------------------


def test_an_unknown_section_names_the_variable_not_a_line_of_the_file(tmp_path: Path) -> None:
    assert errors(write(tmp_path), {"LIFECYCLE_NOPE__X": "1"}) == [
        "environment LIFECYCLE_NOPE__X: unknown key 'nope'"
    ]


def test_an_unknown_key_deeper_down_names_the_variable(tmp_path: Path) -> None:
    assert errors(write(tmp_path), {"LIFECYCLE_MAIL__SMTP__HOSST": "x"}) == [
        "environment LIFECYCLE_MAIL__SMTP__HOSST: unknown key 'mail.smtp.hosst'"
    ]


def test_base_dir_is_not_a_setting(tmp_path: Path) -> None:
    assert errors(write(tmp_path), {"LIFECYCLE_BASE_DIR__X": "/"}) == [
        "environment LIFECYCLE_BASE_DIR__X: unknown key 'base_dir'"
    ]


@pytest.mark.parametrize(
    ("name", "section"), [("LIFECYCLE_API", "api"), ("LIFECYCLE_LINKS", "links")]
)
def test_a_variable_that_targets_a_whole_section_is_an_error(
    tmp_path: Path, name: str, section: str
) -> None:
    [problem] = errors(write(tmp_path), {name: "1"})
    assert problem.startswith(f"environment {name}: '{section}' is a section: set its keys ")
    assert f"{name}__" in problem


def test_a_key_below_a_single_value_is_an_error(tmp_path: Path) -> None:
    assert errors(write(tmp_path), {"LIFECYCLE_DATABASE__URL__X": "1"}) == [
        "environment LIFECYCLE_DATABASE__URL__X: 'database.url' is a single value, not a section"
    ]


def test_an_item_of_a_list_is_an_error_saying_to_set_the_list(tmp_path: Path) -> None:
    assert errors(write(tmp_path), {"LIFECYCLE_API__API_KEYS__0": "k"}) == [
        "environment LIFECYCLE_API__API_KEYS__0: 'api.api_keys' is a list: set it whole, as JSON"
    ]


def test_an_empty_key_is_an_error(tmp_path: Path) -> None:
    [problem] = errors(write(tmp_path), {"LIFECYCLE_API____PORT": "1"})
    assert problem.startswith("environment LIFECYCLE_API____PORT: empty key")


def test_other_lifecycle_variables_are_still_ignored(tmp_path: Path) -> None:
    environ = {
        "LIFECYCLE_CONFIG": "x.yaml",
        "LIFECYCLE_TEST_PG_URL": "x",
        "LIFECYCLE_CONFIGURED": "1",
    }
    assert load_config(write(tmp_path), environ=environ).api.port == 8000


def test_environment_and_file_problems_come_together_each_in_its_place(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  port: 99999\n")
    problems = errors(path, {"LIFECYCLE_NOPE__X": "1", "LIFECYCLE_SCHEDULER__TICK": "5x"})
    assert "environment LIFECYCLE_NOPE__X: unknown key 'nope'" in problems
    assert any(
        p.startswith("environment LIFECYCLE_SCHEDULER__TICK: scheduler.tick:") for p in problems
    )
    assert any(p.startswith(f"{path}:2: api.port:") for p in problems)
    assert len(problems) == 3


# ---- the database ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "database.url: empty"),
        ("mysql://x", "database.url: unsupported database 'mysql'"),
        ("duckdb:///x.db", "database.url: unsupported database 'duckdb'"),
        ("postgres://u@h/db", "database.url: unsupported database 'postgres'"),
        ("not a url", "database.url: not a database URL"),
        ("postgresql+psycopg2://u@h/db", "database.url: unsupported driver 'psycopg2'"),
        ("sqlite+aiosqlite:///x.db", "database.url: unsupported driver 'aiosqlite'"),
    ],
)
def test_a_database_the_engine_cannot_use_is_refused_naming_the_variable(
    tmp_path: Path, url: str, says: str
) -> None:
    [problem] = errors(write(tmp_path), {"LIFECYCLE_DATABASE__URL": url})
    assert problem.startswith(f"environment LIFECYCLE_DATABASE__URL: {says}")
    assert SUPPORTED in problem


def test_a_bad_database_url_in_the_file_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "# the database\ndatabase:\n  url: duckdb:///x.db\n")
    [problem] = errors(path, {})
    assert problem.startswith(f"{path}:3: database.url: unsupported database 'duckdb'")


def test_a_refused_url_never_shows_its_password(tmp_path: Path) -> None:
    [problem] = errors(write(tmp_path), {"LIFECYCLE_DATABASE__URL": "mysql://u:hunter2@db/x"})
    assert "hunter2" not in problem


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite+pysqlite:///x.db",
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    ],
)
def test_the_supported_urls_load(tmp_path: Path, url: str) -> None:
    assert (
        load_config(write(tmp_path), environ={"LIFECYCLE_DATABASE__URL": url}).database.url == url
    )


# ---- time zones -------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "utc+2"])
def test_an_unknown_time_zone_is_refused_naming_the_variable(tmp_path: Path, zone: str) -> None:
    [problem] = errors(write(tmp_path), {"LIFECYCLE_DEFAULTS__TIMEZONE": zone})
    assert problem.startswith(
        f"environment LIFECYCLE_DEFAULTS__TIMEZONE: defaults.timezone: unknown time zone {zone!r}"
    )
    assert "IANA" in problem


def test_an_unknown_time_zone_in_the_file_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults:\n  timezone: Mars/Olympus\n")
    [problem] = errors(path, {})
    assert problem.startswith(f"{path}:2: defaults.timezone: unknown time zone 'Mars/Olympus'")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"])
def test_iana_zones_load(tmp_path: Path, zone: str) -> None:
    environ = {"LIFECYCLE_DEFAULTS__TIMEZONE": zone}
    assert load_config(write(tmp_path), environ=environ).defaults.timezone == zone


# ---- quiet hours ------------------------------------------------------------------------------


def test_quiet_hours_false_means_none(tmp_path: Path) -> None:
    path = write(tmp_path, "mail:\n  quiet_hours: false\n")
    assert load_config(path, environ={}).mail.quiet_hours is None


@pytest.mark.parametrize("value", ["false", "off", "False"])
def test_quiet_hours_off_from_the_environment(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, "mail:\n  quiet_hours: {start: '21:00', end: '08:00'}\n")
    environ = {"LIFECYCLE_MAIL__QUIET_HOURS": value}
    assert load_config(path, environ=environ).mail.quiet_hours is None


def test_quiet_hours_true_is_refused_saying_what_to_write(tmp_path: Path) -> None:
    path = write(tmp_path, "mail:\n  quiet_hours: true\n")
    [problem] = errors(path, {})
    assert problem.startswith(f"{path}:2: mail.quiet_hours: ")
    assert "false" in problem
    assert "'21:00'" in problem


def test_quiet_hours_as_json_from_the_environment(tmp_path: Path) -> None:
    environ = {"LIFECYCLE_MAIL__QUIET_HOURS": '{"start": "22:00", "end": "07:00"}'}
    quiet = load_config(write(tmp_path), environ=environ).mail.quiet_hours
    assert quiet is not None
    assert (quiet.start.hour, quiet.end.hour) == (22, 7)


# ---- lists from the environment ---------------------------------------------------------------


def test_a_json_list_from_the_environment(tmp_path: Path) -> None:
    environ = {"LIFECYCLE_API__API_KEYS": '["k1", "k2"]'}
    assert load_config(write(tmp_path), environ=environ).api.api_keys == ["k1", "k2"]


def test_a_bad_json_list_names_the_variable_and_the_json_error(tmp_path: Path) -> None:
    [problem] = errors(write(tmp_path), {"LIFECYCLE_API__API_KEYS": '["k1", k2]'})
    assert problem.startswith("environment LIFECYCLE_API__API_KEYS: api.api_keys: not valid JSON")
    assert "column 8" in problem
    assert """'["a", "b"]'""" in problem


def test_a_list_that_is_not_json_says_to_write_json(tmp_path: Path) -> None:
    [problem] = errors(write(tmp_path), {"LIFECYCLE_API__API_KEYS": "k1,k2"})
    assert problem.startswith("environment LIFECYCLE_API__API_KEYS: api.api_keys: ")
    assert """LIFECYCLE_API__API_KEYS='["a", "b"]'""" in problem


def test_a_single_value_is_never_read_as_json(tmp_path: Path) -> None:
    # A secret may well start with a bracket: only lists, mappings and sections are JSON.
    environ = {"LIFECYCLE_API__SECRET_KEY": "[not json", "LIFECYCLE_BRAND__NAME": '["A"]'}
    config = load_config(write(tmp_path), environ=environ)
    assert config.api.secret_key == "[not json"
    assert config.brand.name == '["A"]'


def test_a_trait_list_still_takes_one_plain_name(tmp_path: Path) -> None:
    environ = {"LIFECYCLE_INGEST__EMAIL": "work_email"}
    assert load_config(write(tmp_path), environ=environ).ingest.email == ("work_email",)
