"""Real Bitcoin Core nodes for tests and benchmarks: the judge of what the bridge reads.

The emulated nodes (``bridge/emulator``) cover what no real node offers yet (bounds,
overload, the proposed IPC interfaces); everything a real ``bitcoind`` or
``bitcoin-node`` does offer is checked against one. ``binaries`` finds and unpacks the
project's copy of Bitcoin Core, ``node`` runs regtest nodes on loopback, ``rpc`` talks
JSON-RPC to them, ``p2p`` speaks the wire protocol for the ping benchmark.
"""
