"""Command-line interface (``tracebridge ...``)."""
