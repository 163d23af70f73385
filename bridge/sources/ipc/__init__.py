"""The IPC source: Bitcoin Core's Cap'n Proto interface over a Unix socket (pycapnp)."""
