"""Peer-address redaction (``privacy.*``): what a honeynode may publish about its peers."""
