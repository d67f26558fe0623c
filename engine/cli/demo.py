"""`lifecycle demo`: a synthetic population, its tour, and the simulated history."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
from rich.table import Table

from engine.app.wiring import App
from engine.cli.base import State, cli, friendly_errors, out
from engine.cli.present import preview_summary, preview_table, tick_table
from engine.cli.progress import progress_bar
from engine.clock import SystemClock, isoformat
from engine.errors import LifecycleError
from engine.whatif import population as demo_data
from engine.whatif.replay import Period
from engine.whatif.simulate import STEP as SIMULATION_STEP
from engine.whatif.simulate import Response
from engine.whatif.simulate import simulate as run_simulation


@cli.command()
@click.option("--users", "n", type=click.IntRange(1, 5_000_000), default=200, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--days",
    type=click.IntRange(1, 365),
    default=7,
    show_default=True,
    help="Signups spread over this many past days.",
)
@click.option("--reset", is_flag=True, help="Empty the database (and outbox) first.")
@click.option(
    "--tour/--no-tour",
    default=True,
    show_default=True,
    help="Then show a dry run, run one tick and list the outbox.",
)
@click.option(
    "--simulate",
    type=click.IntRange(1, 365),
    metavar="DAYS",
    help="Instead: signups over the past DAYS, the engine ticking every simulated hour, and "
    "users who respond to what they are sent.",
)
@click.option(
    "--effect",
    type=click.FloatRange(-1, 1),
    default=0.15,
    show_default=True,
    help="With --simulate: how much a message raises the chance of its goal.",
)
@click.option(
    "--baseline",
    type=click.FloatRange(0, 1),
    default=0.10,
    show_default=True,
    help="With --simulate: the chance of the goal without a message.",
)
@click.pass_obj
@friendly_errors
def demo(
    state: State,
    n: int,
    seed: int,
    days: int,
    reset: bool,
    tour: bool,
    simulate: int | None,
    effect: float,
    baseline: float,
) -> None:
    """Fill the database with a synthetic Airtouch population (deterministic per seed)."""
    app = state.app()
    now = SystemClock().now()
    if app.store.reads.counts()["users"] and not reset:
        raise LifecycleError(
            "the database already has users; pass --reset to replace "
            "everything in it with the demo population"
        )
    if reset:
        _reset(app)
    if simulate:
        _simulate(app, n, seed, simulate, baseline, effect)
        return
    with out.status(f"Generating {n} users over {days} days…"):
        population = demo_data.generate(n, seed=seed, now=now, days=days)
        accounts = demo_data.group_calls(population.users)
        for start in range(0, len(accounts), 5000):
            app.store.people.upsert_accounts(accounts[start : start + 5000], now)
        for start in range(0, len(population.users), 5000):
            app.store.people.upsert_users(population.users[start : start + 5000], now)
        for start in range(0, len(population.events), 5000):
            app.store.people.insert_events(population.events[start : start + 5000], now)
        app.store.people.analyze()
    out.print(_population_table(app))
    if tour:
        _tour(app, now)


def _reset(app: App) -> None:
    app.store.reset()
    outbox = app.config.outbox_dir
    if outbox.is_dir():
        for file in outbox.glob("*.eml"):
            file.unlink()


def _population_table(app: App) -> Table:
    counts = app.store.reads.counts()
    table = Table(
        title=f"Demo population: {counts['users']} users, {counts['events']} events",
        header_style="bold",
    )
    table.add_column("Persona")
    table.add_column("Signup source")
    table.add_column("Users", justify="right")
    for persona, source, count in app.store.reads.persona_counts():
        table.add_row(persona or "-", source or "-", str(count))
    return table


def _tour(app: App, now: datetime) -> None:
    previews = app.runner.dry_run(now)
    out.rule("1. Dry run: who would get what, now (nothing is written)")
    out.print(preview_table(previews, limit=15, width=out.width))
    out.print(preview_summary(previews))
    out.rule("2. One real tick")
    report = app.runner.tick(now)
    out.print(tick_table(report))
    out.rule("3. The outbox")
    files = sorted(app.config.outbox_dir.glob("*.eml"))
    out.print(f"{len(files)} .eml files in {app.config.outbox_dir}, for example:")
    for file in files[:5]:
        out.print(f"  {file}", highlight=False, soft_wrap=True)
    waiting = app.store.reads.status_counts().get("pending", 0)
    if waiting:
        out.print(
            f"{waiting} more emails wait for quiet hours to end in their users' timezones "
            "(mail.quiet_hours); the daemon sends them then."
        )
    out.print(
        "\nNext: [bold]lifecycle dry-run --at <later ISO time>[/] to see what comes next, "
        "[bold]lifecycle deliveries[/] for the ledger."
    )


def _simulate(app: App, n: int, seed: int, days: int, baseline: float, effect: float) -> None:
    """`demo --simulate`: a history of `days` ending now, the engine ticking every hour."""
    end = SystemClock().now().replace(second=0, microsecond=0)
    period = Period(end - timedelta(days=days), end, SIMULATION_STEP)
    population = demo_data.generate(n, seed=seed, now=end, days=days)
    label = f"Simulating {days} days of {n} users"
    with progress_bar(label, period.count, unit="ticks") as update:
        response = Response(baseline, effect, seed)
        result = run_simulation(app.runner, population, period, response, progress=update)
    out.print(_population_table(app))
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(app.store.reads.status_counts().items()))
    out.print(f"{result.ticks} ticks from {isoformat(period.start)}; ledger rows: {counts}")
    out.print(
        f"{sum(result.goals.values())} goal events performed in response "
        f"(baseline {baseline:.0%}, true effect of a message +{effect:.0%})"
    )
