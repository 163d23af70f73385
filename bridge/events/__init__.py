"""The event catalogue and everything derived from it (layout, Avro, BPF headers)."""
