"""What the engine tells operators: Prometheus metrics and log formatting."""
