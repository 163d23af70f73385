"""Prometheus metrics: the ledger's books as monotonic counters, plus the gauges and
histograms an operator watches a fleet by (see README, "Metrics")."""
