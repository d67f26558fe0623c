"""Reports: did the messages work, and what do users do? Read-only, computed in SQL.

Each report module builds SQLAlchemy Core statements (pure, like `engine.sql`) and hands them
to `store.reads.report_rows`, so that `engine.store` stays the only package that runs SQL. A
report is plain data (`engine.reports.model.Report`): `output` prints it for people (rich) or
programs (JSON, CSV), `html` draws one self-contained page."""
