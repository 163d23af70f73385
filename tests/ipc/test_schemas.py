"""The vendored-by-hand Cap'n Proto schemas: they compile, load, and say what upstream says.

The expected IDs and ordinals below are copied from the reference
(shared/reference/bitcoin-tracing.md sections 3.2 and 4), not from the .capnp files,
so a typo in a schema fails here instead of silently breaking interoperability with a
real bitcoin-node.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("capnp")

from bridge.sources.ipc.schemas import (
    SET_FILES,
    VERSIONS,
    FieldInfo,
    SchemaError,
    field_info,
    import_path,
    interface_id,
    load_schema_set,
    method_ordinals,
    schema_root,
    set_dir,
)

pytestmark = pytest.mark.ipc

ROOT = schema_root()

FILE_IDS = {
    "mp/proxy.capnp": 0xCC316E3F71A040FB,
    "init.capnp": 0xF2C5CFA319406AA6,
    "echo.capnp": 0x888B4F7F51E691F7,
    "common.capnp": 0xCD2C6232CB484A28,
    "rpc.capnp": 0x9C3505DC45E146AC,
    "mining.capnp": 0xC77D03DF6A41B505,
    "handler.capnp": 0xEBD8F46E2F369076,
    "tracing_utxo.capnp": 0xFCBBD3F49874128E,
    "tracing_net.capnp": 0xCA4C717E6CF65A84,
    "chain.capnp": 0x94F21A4864BD2C65,
    "node.capnp": 0x92546C47DC734B2E,
}


def _all_files() -> list[tuple[str, Path]]:
    files = [("mp", ROOT / "mp" / "proxy.capnp")]
    for version in VERSIONS:
        files += [(version, set_dir(version) / f"{name}.capnp") for name in SET_FILES[version]]
    return files


@pytest.mark.skipif(
    shutil.which("capnp") is None, reason="needs the capnp compiler (Debian: capnproto)"
)
@pytest.mark.parametrize(("version", "path"), _all_files(), ids=lambda x: str(x))
def test_capnp_compiler_accepts(version: str, path: Path) -> None:
    imports = import_path("master" if version == "mp" else version)  # type: ignore[arg-type]
    cmd = ["capnp", "compile", "-o-", *(f"-I{d}" for d in imports), str(path)]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout, "capnp compile -o- writes the CodeGeneratorRequest"


@pytest.mark.parametrize(("version", "path"), _all_files(), ids=lambda x: str(x))
def test_file_ids(version: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^@0x([0-9a-f]{16});", text, re.MULTILINE)
    assert match, f"{path} has no file ID"
    key = "mp/proxy.capnp" if version == "mp" else path.name
    assert int(match.group(1), 16) == FILE_IDS[key]
    # Like Core's files: the C++ namespace and libmultiprocess's annotations.
    assert 'using Cxx = import "/capnp/c++.capnp";' in text
    if version != "mp":
        assert 'using Proxy = import "/mp/proxy.capnp";' in text
        assert '$Cxx.namespace("ipc::capnp::messages");' in text


def test_every_set_loads_and_sets_coexist() -> None:
    sets = {v: load_schema_set(v) for v in VERSIONS}
    # Same file ID, different content, one process: each set has its own parser.
    assert method_ordinals(sets["v30"].init.Init) == {
        "construct": 0,
        "makeEcho": 1,
        "makeMining": 2,
    }
    assert "makeNetTracing" in method_ordinals(sets["proposed"].init.Init)
    assert interface_id(sets["v30"].init.Init) == interface_id(sets["proposed"].init.Init)
    # Both usable side by side.
    ctx_a, ctx_b = sets["v30"].proxy.Context(), sets["proposed"].proxy.Context()
    assert ctx_a.to_dict() == ctx_b.to_dict() == {}
    assert sets["v30"].tracing_net is None
    assert sets["proposed"].tracing_net is not None
    with pytest.raises(SchemaError):
        sets["master"].require("chain")
    assert load_schema_set("v30") is sets["v30"], "loading is cached"


def test_proposed_copies_of_master_files_are_identical() -> None:
    for name in ("echo", "mining", "rpc"):
        assert (set_dir("proposed") / f"{name}.capnp").read_bytes() == (
            set_dir("master") / f"{name}.capnp"
        ).read_bytes()


def test_import_path_order() -> None:
    path = import_path("v31")
    assert path[0] == str(ROOT), "the mp/ directory first, so no other proxy.capnp wins"
    assert (Path(path[1]) / "capnp" / "c++.capnp").is_file()
    assert path[2] == str(ROOT / "v31")


def test_proxy() -> None:
    s = load_schema_set("master")
    assert method_ordinals(s.proxy.ThreadMap) == {"makeThread": 0}
    assert method_ordinals(s.proxy.Thread) == {"getName": 0}
    ctx = field_info(s.proxy.Context)
    assert (ctx["thread"].ordinal, ctx["thread"].type) == (0, "interface")
    assert (ctx["callbackThread"].ordinal, ctx["callbackThread"].type) == (1, "interface")
    annotations = {n.name for n in s.proxy.schema.node.nestedNodes}
    assert {"include", "includeTypes", "wrap", "count", "exception", "name", "skip"} <= annotations


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v30", {"construct": 0, "makeEcho": 1, "makeMining": 2}),
        ("v31", {"construct": 0, "makeEcho": 1, "makeMiningOld2": 2, "makeMining": 3}),
        (
            "master",
            {"construct": 0, "makeEcho": 1, "makeMiningOld2": 2, "makeMining": 3, "makeRpc": 4},
        ),
        (
            "proposed",
            {
                "construct": 0,
                "makeEcho": 1,
                "makeMiningOld2": 2,
                "makeMining": 3,
                "makeRpc": 4,
                "makeNetTracing": 5,
                "makeUtxoTracing": 6,
                "makeChain": 7,
                "makeNode": 8,
            },
        ),
    ],
)
def test_init_ordinals(version: str, expected: dict[str, int]) -> None:
    assert method_ordinals(load_schema_set(version).init.Init) == expected  # type: ignore[arg-type]


def test_echo_rpc_common() -> None:
    s = load_schema_set("master")
    assert method_ordinals(s.echo.Echo) == {"destroy": 0, "echo": 1}
    assert method_ordinals(s.require("rpc").Rpc) == {"executeRpc": 0}
    params = s.require("rpc").Rpc.schema.methods["executeRpc"].param_type.fieldnames
    assert list(params) == ["context", "request", "uri", "user"]
    ref = field_info(s.common.BlockRef)
    assert (ref["hash"].ordinal, ref["hash"].type, ref["height"].ordinal, ref["height"].type) == (
        0,
        "data",
        1,
        "int32",
    )


@pytest.mark.parametrize("version", ["v30", "v31", "master", "proposed"])
def test_mining_prefix(version: str) -> None:
    s = load_schema_set(version)  # type: ignore[arg-type]
    ords = method_ordinals(s.mining.Mining)
    assert {
        k: ords[k] for k in ("isTestChain", "isInitialBlockDownload", "getTip", "waitTipChanged")
    } == {
        "isTestChain": 0,
        "isInitialBlockDownload": 1,
        "getTip": 2,
        "waitTipChanged": 3,
    }
    wait = s.mining.Mining.schema.methods["waitTipChanged"].param_type.fieldnames
    assert list(wait) == ["context", "currentTip", "timeout"]


def test_master_mining() -> None:
    s = load_schema_set("master")
    assert method_ordinals(s.mining.Mining) == {
        "isTestChain": 0,
        "isInitialBlockDownload": 1,
        "getTip": 2,
        "waitTipChanged": 3,
        "createNewBlock": 4,
        "checkBlock": 5,
        "interrupt": 6,
        "submitBlock": 7,
    }
    assert method_ordinals(s.mining.BlockTemplate) == {
        "destroy": 0,
        "getBlockHeader": 1,
        "getBlock": 2,
        "getTxFees": 3,
        "getTxSigops": 4,
        "getCoinbaseTx": 5,
        "getCoinbaseMerklePath": 6,
        "submitSolution": 7,
        "waitNext": 8,
        "interruptWait": 9,
    }
    assert s.mining.maxMoney == 2100000000000000
    assert s.mining.maxDouble == 1.7976931348623157e308
    wait = field_info(s.mining.BlockWaitOptions)
    assert (wait["timeout"].default, wait["feeThreshold"].default) == (
        1.7976931348623157e308,
        2100000000000000,
    )
    create = field_info(s.mining.BlockCreateOptions)
    assert [
        create[k].default
        for k in ("useMempool", "blockReservedWeight", "coinbaseOutputMaxAdditionalSigops")
    ] == [
        True,
        8000,
        400,
    ]
    coinbase = field_info(s.mining.CoinbaseTx)
    assert [(n, f.ordinal) for n, f in coinbase.items()] == [
        ("version", 0),
        ("sequence", 1),
        ("scriptSigPrefix", 2),
        ("witness", 3),
        ("blockRewardRemaining", 4),
        ("requiredOutputs", 5),
        ("lockTime", 6),
    ]


def test_handler_and_utxo_tracing() -> None:
    s = load_schema_set("proposed")
    assert method_ordinals(s.require("handler").Handler) == {"destroy": 0, "disconnect": 1}
    assert method_ordinals(s.require("tracing_utxo").Tracing) == {"traceUtxoCache": 0}
    assert method_ordinals(s.require("tracing_utxo").UtxoCacheTrace) == {
        "destroy": 0,
        "add": 1,
        "spend": 2,
        "uncache": 3,
    }
    for method in ("add", "spend", "uncache"):
        params = (
            s.require("tracing_utxo").UtxoCacheTrace.schema.methods[method].param_type.fieldnames
        )
        assert list(params) == ["utxoInfo"], "no context: runs on the client's event loop"
    info = field_info(s.require("tracing_utxo").UtxoInfo)
    assert {n: (f.ordinal, f.type) for n, f in info.items()} == {
        "outpointHash": (0, "data"),
        "outpointN": (1, "uint32"),
        "height": (2, "uint32"),
        "value": (3, "int64"),
        "isCoinbase": (4, "bool"),
    }


def test_net_tracing() -> None:
    s = load_schema_set("proposed")
    assert method_ordinals(s.require("tracing_net").Tracing) == {
        "destroy": 0,
        "traceNetMessages": 1,
    }
    assert method_ordinals(s.require("tracing_net").NetMessageTrace) == {
        "destroy": 0,
        "messages": 1,
    }
    params = (
        s.require("tracing_net").NetMessageTrace.schema.methods["messages"].param_type.fieldnames
    )
    assert list(params) == ["context", "messages", "dropped"]
    opts = field_info(s.require("tracing_net").NetMessageTraceOptions)
    assert {n: (f.ordinal, f.type, f.default) for n, f in opts.items()} == {
        "inbound": (0, "bool", True),
        "outbound": (1, "bool", True),
        "maxPayloadBytes": (2, "uint32", 0),
        "maxQueueEvents": (3, "uint32", 65536),
        "maxBatchEvents": (4, "uint32", 1024),
        "maxBatchWaitUs": (5, "uint32", 1000),
        "maxQueueBytes": (6, "uint64", 67108864),
        "maxBatchBytes": (7, "uint64", 4194304),
    }
    msg = field_info(s.require("tracing_net").NetMessage)
    assert {n: (f.ordinal, f.type) for n, f in msg.items()} == {
        "inbound": (0, "bool"),
        "peerId": (1, "int64"),
        "peerAddr": (2, "text"),
        "connType": (3, "text"),
        "msgType": (4, "text"),
        "msgSize": (5, "uint64"),
        "payload": (6, "data"),
        "timestampUs": (7, "int64"),
    }


def test_chain() -> None:
    s = load_schema_set("proposed")
    ords = method_ordinals(s.require("chain").Chain)
    assert {
        k: ords[k]
        for k in (
            "handleNotifications",
            "waitForNotificationsIfTipChanged",
            "waitForNotifications",
            "requestMempoolTransactions",
        )
    } == {
        "handleNotifications": 39,
        "waitForNotificationsIfTipChanged": 40,
        "waitForNotifications": 41,
        "requestMempoolTransactions": 50,
    }
    assert {
        "estimateSmartFee",
        "mempoolMinFee",
        "relayMinFee",
        "havePruned",
        "getPruneHeight",
    } <= set(ords)
    assert sorted(ords.values()) == list(range(len(ords))), "consecutive ordinals"
    assert method_ordinals(s.require("chain").ChainNotifications) == {
        "destroy": 0,
        "transactionAddedToMempool": 1,
        "transactionRemovedFromMempool": 2,
        "blockConnected": 3,
        "blockDisconnected": 4,
        "updatedBlockTip": 5,
        "chainStateFlushed": 6,
    }
    methods = s.require("chain").ChainNotifications.schema.methods
    assert list(methods["transactionRemovedFromMempool"].param_type.fieldnames) == [
        "context",
        "tx",
        "reason",
    ]
    assert list(methods["blockConnected"].param_type.fieldnames) == ["context", "role", "block"]
    assert list(methods["chainStateFlushed"].param_type.fieldnames) == [
        "context",
        "role",
        "locator",
    ]
    info = field_info(s.require("chain").BlockInfo)
    assert {n: (f.ordinal, f.type, f.default) for n, f in info.items()} == {
        "hash": (0, "data", None),
        "prevHash": (1, "data", None),
        "height": (2, "int32", -1),
        "fileNumber": (3, "int32", -1),
        "dataPos": (4, "uint32", 0),
        "data": (5, "data", None),
        "undoData": (6, "data", None),
        "chainTimeMax": (7, "uint32", 0),
    }
    role = field_info(s.require("chain").ChainstateRole)
    assert {n: (f.ordinal, f.type) for n, f in role.items()} == {
        "validated": (0, "bool"),
        "historical": (1, "bool"),
    }


HANDLERS = {
    "handleInitMessage": (40, "InitMessageCallback"),
    "handleMessageBox": (41, "MessageBoxCallback"),
    "handleQuestion": (42, "QuestionCallback"),
    "handleShowProgress": (43, "ShowNodeProgressCallback"),
    "handleNotifyNumConnectionsChanged": (44, "NotifyNumConnectionsChangedCallback"),
    "handleNotifyNetworkActiveChanged": (45, "NotifyNetworkActiveChangedCallback"),
    "handleNotifyAlertChanged": (46, "NotifyAlertChangedCallback"),
    "handleBannedListChanged": (47, "BannedListChangedCallback"),
    "handleNotifyBlockTip": (48, "NotifyBlockTipCallback"),
    "handleNotifyHeaderTip": (49, "NotifyHeaderTipCallback"),
}


def test_node() -> None:
    s = load_schema_set("proposed")
    ords = method_ordinals(s.require("node").Node)
    assert {k: ords[k] for k in HANDLERS} == {k: v[0] for k, v in HANDLERS.items()}
    assert (ords["getNodesStats"], ords["getMempoolSize"]) == (13, 21)
    polls = {
        "getNodeCount",
        "getTotalBytesRecv",
        "getTotalBytesSent",
        "getMempoolDynamicUsage",
        "getMempoolMaxUsage",
        "getHeaderTip",
        "getVerificationProgress",
        "isInitialBlockDownload",
        "getBanned",
        "getNetworkActive",
    }
    assert polls <= set(ords)
    assert sorted(ords.values()) == list(range(len(ords))), "consecutive ordinals"
    for method, (_, callback) in HANDLERS.items():
        params = s.require("node").Node.schema.methods[method].param_type.fieldnames
        assert list(params) == ["context", "callback"]
        assert method_ordinals(getattr(s.node, callback)) == {"destroy": 0, "call": 1}
    call = {
        c: list(getattr(s.node, c).schema.methods["call"].param_type.fieldnames)
        for _, c in HANDLERS.values()
    }
    assert call["NotifyNumConnectionsChangedCallback"] == ["context", "newNumConnections"]
    assert call["NotifyNetworkActiveChangedCallback"] == ["context", "networkActive"]
    assert call["NotifyAlertChangedCallback"] == ["context"]
    assert call["BannedListChangedCallback"] == ["context"]
    assert (
        call["NotifyBlockTipCallback"]
        == call["NotifyHeaderTipCallback"]
        == [
            "context",
            "syncState",
            "tip",
            "verificationProgress",
        ]
    )
    tip = field_info(s.require("node").BlockTip)
    assert {n: (f.ordinal, f.type) for n, f in tip.items()} == {
        "blockHeight": (0, "int32"),
        "blockTime": (1, "int64"),
        "blockHash": (2, "data"),
    }
    stats = field_info(s.require("node").NodeStats)
    for name in (
        "nodeid",
        "addrName",
        "connType",
        "network",
        "version",
        "cleanSubVer",
        "sendBytes",
        "recvBytes",
        "pingTime",
        "minPingTime",
        "bip152HighbandwidthTo",
        "bip152HighbandwidthFrom",
    ):
        assert name in stats


def test_every_context_parameter_is_first_and_a_proxy_context() -> None:
    s = load_schema_set("proposed")
    ctx_id = s.proxy.Context.schema.node.id
    optional = ("rpc", "handler", "tracing_utxo", "tracing_net", "chain", "node")
    for module in (s.init, s.echo, s.mining, *(s.require(n) for n in optional)):
        for node in module.schema.node.nestedNodes:
            iface = getattr(module, node.name)
            if not hasattr(iface, "Server"):
                continue
            for name, method in iface.schema.methods.items():
                fields = method.param_type.node.struct.fields
                for position, field in enumerate(fields):
                    if field.name == "context":
                        assert position == 0, f"{node.name}.{name}"
                        assert field.slot.type.struct.typeId == ctx_id, f"{node.name}.{name}"


# ------------------------------------------------------------------------------------
# Defaults and IDs: what the real node showed (tests/realnode/test_ipc_real.py).
# ------------------------------------------------------------------------------------

# The interface IDs a real master node (d84fc352) names in its UNIMPLEMENTED answers
# (typeId = ...): derived from the file IDs and the names, so they pin both.
INTERFACE_IDS = {
    ("init", "Init"): 0x8838C700BA5CBA65,
    ("echo", "Echo"): 0xD36B89640DC94399,
    ("rpc", "Rpc"): 0xACB1D37F0A713129,
    ("mining", "Mining"): 0xF9C68436DF3AF39E,
    ("mining", "BlockTemplate"): 0xF9671AD841B2F622,
}
MAX_DOUBLE = 1.7976931348623157e308


class _Params:
    """A method's parameter struct, shaped like a struct module for field_info()."""

    def __init__(self, interface: Any, method: str) -> None:
        self.schema = interface.schema.methods[method].param_type


def params(interface: Any, method: str) -> dict[str, FieldInfo]:
    return field_info(_Params(interface, method))


@pytest.mark.parametrize("version", VERSIONS)
def test_interface_ids_as_the_real_node_names_them(version: str) -> None:
    s = load_schema_set(version)  # type: ignore[arg-type]
    for (module, name), expected in INTERFACE_IDS.items():
        if getattr(s, module) is None or not hasattr(getattr(s, module), name):
            continue  # v30/v31 have no rpc.capnp; v30 declares no BlockTemplate
        assert interface_id(getattr(getattr(s, module), name)) == expected, (module, name)


@pytest.mark.parametrize(
    ("version", "default"),
    [("v30", None), ("v31", MAX_DOUBLE), ("master", MAX_DOUBLE), ("proposed", MAX_DOUBLE)],
)
def test_wait_tip_changed_timeout_default(version: str, default: float | None) -> None:
    """v30 declares no default; bitcoin#34568 (v31.0) added ``= .maxDouble``. Cap'n Proto
    XORs a field with its default, so a client with the wrong one sends another value
    (the real master node was seen to read 0 ms and 700 ms as sent)."""
    s = load_schema_set(version)  # type: ignore[arg-type]
    timeout = params(s.mining.Mining, "waitTipChanged")["timeout"]
    assert (timeout.ordinal, timeout.type, timeout.default) == (2, "float64", default)


@pytest.mark.parametrize("version", ["v31", "master"])
def test_mining_defaults_checked_on_the_real_node(version: str) -> None:
    """The defaults the real-node test checks by behaviour (master), and v31's, which
    bitcoin#34568 introduced together with them."""
    s = load_schema_set(version)  # type: ignore[arg-type]
    check = field_info(s.mining.BlockCheckOptions)
    assert {n: (f.ordinal, f.default) for n, f in check.items()} == {
        "checkMerkleRoot": (0, True),
        "checkPow": (1, True),
    }
    wait = field_info(s.mining.BlockWaitOptions)
    assert {n: (f.ordinal, f.type, f.default) for n, f in wait.items()} == {
        "timeout": (0, "float64", MAX_DOUBLE),
        "feeThreshold": (1, "int64", 2100000000000000),
    }
    create = field_info(s.mining.BlockCreateOptions)
    assert {n: (f.ordinal, f.type, f.default) for n, f in create.items()} == {
        "useMempool": (0, "bool", True),
        "blockReservedWeight": (1, "uint64", 8000),
        "coinbaseOutputMaxAdditionalSigops": (2, "uint64", 400),
    }
    cooldown = params(s.mining.Mining, "createNewBlock")["cooldown"]
    assert (cooldown.ordinal, cooldown.default) == (2, True)
    assert list(params(s.mining.Mining, "checkBlock")) == ["context", "block", "options"]
    assert list(params(s.mining.BlockTemplate, "submitSolution")) == [
        "context",
        "version",
        "timestamp",
        "nonce",
        "coinbase",
    ]


def test_master_submit_block() -> None:
    s = load_schema_set("master")
    assert list(params(s.mining.Mining, "submitBlock")) == ["context", "block"]
    assert list(s.mining.Mining.schema.methods["submitBlock"].result_type.fieldnames) == [
        "reason",
        "debug",
        "result",
    ]
    assert list(params(s.mining.Mining, "interrupt")) == [], "no context: the event loop"


@pytest.mark.parametrize("version", ["v30", "v31"])
def test_older_sets_share_master_common_and_echo(version: str) -> None:
    """Assumed (no v30/v31 node to ask): BlockRef and Echo as in master."""
    s, m = load_schema_set(version), load_schema_set("master")  # type: ignore[arg-type]
    assert field_info(s.common.BlockRef) == field_info(m.common.BlockRef)
    assert method_ordinals(s.echo.Echo) == method_ordinals(m.echo.Echo)


def test_v31_mining_is_a_prefix_of_master() -> None:
    v31, master = load_schema_set("v31"), load_schema_set("master")
    ords = method_ordinals(v31.mining.Mining)
    assert ords == {k: v for k, v in method_ordinals(master.mining.Mining).items() if v < 6}
    assert method_ordinals(v31.mining.BlockTemplate) == method_ordinals(master.mining.BlockTemplate)
    for struct in ("BlockCreateOptions", "BlockWaitOptions", "BlockCheckOptions", "CoinbaseTx"):
        assert field_info(getattr(v31.mining, struct)) == field_info(
            getattr(master.mining, struct)
        ), struct
