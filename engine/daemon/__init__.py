"""`lifecycle run`: the APScheduler jobs, hot reload of rules and templates, and the
one-daemon-per-SQLite-file lock."""
