"""The benchmark harness for the lifecycle engine (`python -m bench`).

It measures, side by side in one run and per database, a tick of the default rule pack over N
synthetic users against the same rules written by hand as SQL and against the reference
evaluator looping over users. Absolute times on a shared machine are noise; the ratios are the
point. This is a benchmark, not a timed test: it never fails a build on a slow machine, and it
never loosens a target either (a missed target is printed as MISS)."""
