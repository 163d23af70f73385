"""Emulated Bitcoin Core node for testing the bridge without a bitcoind binary.

``usdt_node.c`` fires Bitcoin Core's 20 USDT tracepoints (same provider:name, argument
order, C types and semaphores); :mod:`bridge.emulator.usdt` builds and drives it.
"""

from bridge.emulator.usdt import (
    DEFAULT_STAGES,
    TRACEPOINTS,
    WALLET_TRACEPOINTS,
    ArgKind,
    ArgSpec,
    ArgValue,
    EmulatorError,
    EmulatorReport,
    EmulatorTimeout,
    PingStage,
    RecordedEvent,
    StageReport,
    UsdtNode,
    UsdtScenario,
    build_usdt_node,
    read_records,
)

__all__ = [
    "DEFAULT_STAGES",
    "TRACEPOINTS",
    "WALLET_TRACEPOINTS",
    "ArgKind",
    "ArgSpec",
    "ArgValue",
    "EmulatorError",
    "EmulatorReport",
    "EmulatorTimeout",
    "PingStage",
    "RecordedEvent",
    "StageReport",
    "UsdtNode",
    "UsdtScenario",
    "build_usdt_node",
    "read_records",
]
