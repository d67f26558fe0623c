"""Every SQL statement builder, and every dialect difference: the tables, the candidates query,
the ledger INSERT ... SELECT, quiet-hour tables, JSON reads, the explain query. Pure: builds
statements; `engine.store` runs them."""
