"""Events and traits coming in: Segment-spec messages, JSON-lines and CSV files, the HTTP
ingestion routes and their rate limiter."""
