"""THE single source of truth: every Bitcoin Core tracepoint the bridge understands.

Argument order, C types and units follow Bitcoin Core's ``doc/tracing.md`` and the call
sites at master ``d84fc352`` (v29+ layout): ``block_connected`` duration in ns,
``mempool:replaced`` with 8 arguments, ``misbehaving_connection`` with 2, flush modes
0-4, closed/evicted argument 5 in epoch seconds. See
``../shared/reference/bitcoin-tracing.md`` section 1. Where the doc and the call site
disagree, the real bitcoind's probe notes decide: ``block_connected``'s sigops and
duration and closed/evicted ``time_established`` are int64 (``-8@``), not uint64.

To add a tracepoint: add an :class:`EventSpec` here (arguments in Core's documented
order, string bounds with provenance, a new ``tp_id``), run ``tracebridge gen``, commit
the regenerated files, and add the probe to the emulated node. Nothing in the USDT
source, the codec or the producer needs to change: they are driven by this table.
"""

from __future__ import annotations

from bridge.events.spec import (
    USDT_KINDS,
    EnumSpec,
    EventSpec,
    FieldSpec,
    IpcBinding,
    Kind,
    RecordSpec,
    Stability,
)

# --- enums -----------------------------------------------------------------------

CONNECTION_TYPE = EnumSpec(
    name="ConnectionType",
    doc="ConnectionTypeAsString() in src/node/connection_types.cpp.",
    values=(
        ("inbound", "INBOUND"),
        ("manual", "MANUAL"),
        ("feeler", "FEELER"),
        ("outbound-full-relay", "OUTBOUND_FULL_RELAY"),
        ("block-relay-only", "BLOCK_RELAY_ONLY"),
        ("addr-fetch", "ADDR_FETCH"),
        ("private-broadcast", "PRIVATE_BROADCAST"),
    ),
)

NETWORK = EnumSpec(
    name="Network",
    doc="enum Network in src/netaddress.h, as returned by ConnectedThroughNetwork().",
    values=(
        (0, "UNROUTABLE"),
        (1, "IPV4"),
        (2, "IPV6"),
        (3, "ONION"),
        (4, "I2P"),
        (5, "CJDNS"),
        (6, "INTERNAL"),
    ),
)

FLUSH_MODE = EnumSpec(
    name="FlushStateMode",
    doc="enum class FlushStateMode in src/validation.h (bitcoin#33680 renamed 3 and 4 in v31).",
    values=(
        (0, "NONE"),
        (1, "IF_NEEDED"),
        (2, "PERIODIC"),
        (3, "FORCE_FLUSH"),
        (4, "FORCE_SYNC"),
    ),
)

REMOVAL_REASON = EnumSpec(
    name="MemPoolRemovalReason",
    doc="RemovalReasonToString() in src/kernel/mempool_removal_reason.cpp.",
    values=(
        ("expiry", "EXPIRY"),
        ("sizelimit", "SIZELIMIT"),
        ("reorg", "REORG"),
        ("block", "BLOCK"),
        ("conflict", "CONFLICT"),
        ("replaced", "REPLACED"),
    ),
)

SELECTION_ALGORITHM = EnumSpec(
    name="SelectionAlgorithm",
    doc="GetAlgorithmName() in src/wallet/coinselection.cpp.",
    values=(
        ("bnb", "BNB"),
        ("knapsack", "KNAPSACK"),
        ("srd", "SRD"),
        ("cg", "CG"),
        ("manual", "MANUAL"),
    ),
)

# --- shared argument shapes --------------------------------------------------------

# Tor v3 addresses are 56 base32 chars + ".onion" = 62, plus ":port" up to 6 = 68
# (the bound Bitcoin Core's contrib/tracing scripts and peer-observer use).
PEER_ADDR_MAX = 68
# Longest ConnectionTypeAsString() value is "outbound-full-relay" (19); doc/tracing.md says 20.
CONN_TYPE_MAX = 20
# doc/tracing.md documents 20; the P2P wire limit is 12 (CMessageHeader::MESSAGE_TYPE_SIZE).
MSG_TYPE_MAX = 20
# doc/tracing.md: misbehaving reason "max. length 128 characters".
MISBEHAVING_MAX = 128
# contrib/tracing/mempool_monitor.py: MAX_REJECT_REASON_LENGTH = 118 (longest reject string).
REJECT_REASON_MAX = 118
# Longest RemovalReasonToString() value is "sizelimit" (9).
REMOVAL_REASON_MAX = 9
# Wallet names are user-chosen and unbounded upstream; 128 keeps a record small while
# covering every name seen in practice. Longer names are truncated, not dropped.
WALLET_NAME_MAX = 128
# Longest GetAlgorithmName() value is "knapsack" (8); 16 leaves room for new ones.
ALGORITHM_MAX = 16
# MAX_PROTOCOL_MESSAGE_LENGTH in src/net.h: no P2P payload is larger.
MAX_PAYLOAD = 4_000_000


def _peer_id() -> FieldSpec:
    return FieldSpec("peer_id", Kind.I64, "Peer id (NodeId), unique per node process lifetime.")


def _peer_addr() -> FieldSpec:
    return FieldSpec(
        "peer_addr",
        Kind.CSTR,
        "Peer address and port (m_addr_name).",
        max_len=PEER_ADDR_MAX,
        bound_provenance="Tor v3 onion (62) + ':port' (6); hostnames may be longer and are cut",
        address=True,
    )


def _conn_type() -> FieldSpec:
    return FieldSpec(
        "conn_type",
        Kind.CSTR,
        "Connection type.",
        max_len=CONN_TYPE_MAX,
        bound_provenance="doc/tracing.md",
        enum=CONNECTION_TYPE,
    )


def _network() -> FieldSpec:
    return FieldSpec("network", Kind.U32, "Network the peer is reached through.", enum=NETWORK)


def _txid(name: str = "txid", doc: str = "Transaction id (txid, not wtxid).") -> FieldSpec:
    return FieldSpec(name, Kind.HASH32, doc)


# PR #32898's UtxoInfo carries exactly the utxocache tracepoints' arguments.
_UTXO_INFO = (
    ("txid", "outpointHash"),
    ("index", "outpointN"),
    ("height", "height"),
    ("value", "value"),
    ("is_coinbase", "isCoinbase"),
)

# The 0xB10C prototype's NetMessage carries the net:*_message arguments; `inbound`
# chooses the record and `timestampUs` (CLOCK_MONOTONIC) gives the event time.
_NET_MESSAGE = (
    ("peer_id", "peerId"),
    ("peer_addr", "peerAddr"),
    ("conn_type", "connType"),
    ("msg_type", "msgType"),
    ("msg_size", "msgSize"),
    ("msg", "payload"),
)


def _utxo_fields(height_doc: str) -> tuple[FieldSpec, ...]:
    return (
        _txid("txid", "Txid of the outpoint."),
        FieldSpec("index", Kind.U32, "Output index of the outpoint."),
        FieldSpec("height", Kind.U32, height_doc),
        FieldSpec("value", Kind.I64, "Value of the coin.", unit="sat"),
        FieldSpec("is_coinbase", Kind.BOOL, "True if the coin was created by a coinbase."),
    )


def _wallet_name() -> FieldSpec:
    return FieldSpec(
        "wallet_name",
        Kind.CSTR,
        "Name of the wallet.",
        max_len=WALLET_NAME_MAX,
        bound_provenance="no upstream bound; chosen to keep records small",
    )


def _message_fields() -> tuple[FieldSpec, ...]:
    return (
        _peer_id(),
        _peer_addr(),
        _conn_type(),
        FieldSpec(
            "msg_type",
            Kind.CSTR,
            "P2P message type (command).",
            max_len=MSG_TYPE_MAX,
            bound_provenance="doc/tracing.md (wire limit is 12)",
        ),
        FieldSpec("msg_size", Kind.U64, "Payload size, without the 24-byte header.", "bytes"),
        FieldSpec(
            "msg",
            Kind.PAYLOAD,
            "Message payload, captured up to the configured limit (see msg_truncated). "
            "Empty for version, addr and addrv2 when privacy.peer_addr redacts addresses "
            "(their payloads hold addresses).",
            max_len=MAX_PAYLOAD,
            bound_provenance="MAX_PROTOCOL_MESSAGE_LENGTH",
            length_of="msg_size",
        ),
    )


def _connection_fields(fifth: FieldSpec) -> tuple[FieldSpec, ...]:
    return (_peer_id(), _peer_addr(), _conn_type(), _network(), fifth)


def _time_established() -> FieldSpec:
    # int64 at the probe (TicksSinceEpoch<seconds>, "-8@" in the real bitcoind's notes);
    # the reference doc says uint64.
    return FieldSpec(
        "time_established",
        Kind.I64,
        "When the connection was established (TicksSinceEpoch<seconds>(m_connected)).",
        unit="s since UNIX epoch",
    )


# --- the catalogue -------------------------------------------------------------------

EVENTS: tuple[EventSpec, ...] = (
    # net
    EventSpec(
        tp_id=1,
        subsystem="net",
        event="inbound_message",
        stability=Stability.EXPERIMENTAL,
        doc="A P2P message taken off a peer's receive queue, before it is processed.",
        fields=_message_fields(),
        ipc=IpcBinding("NetMessageTrace", "messages", _NET_MESSAGE),
    ),
    EventSpec(
        tp_id=2,
        subsystem="net",
        event="outbound_message",
        stability=Stability.EXPERIMENTAL,
        doc="A P2P message queued for sending to a peer (CConnman::PushMessage).",
        fields=_message_fields(),
        ipc=IpcBinding("NetMessageTrace", "messages", _NET_MESSAGE),
    ),
    EventSpec(
        tp_id=3,
        subsystem="net",
        event="inbound_connection",
        stability=Stability.EXPERIMENTAL,
        doc="An inbound connection was accepted.",
        fields=_connection_fields(
            FieldSpec(
                "existing_connections",
                Kind.U64,
                "Inbound connections, including this one.",
                unit="count",
            )
        ),
    ),
    EventSpec(
        tp_id=4,
        subsystem="net",
        event="outbound_connection",
        stability=Stability.EXPERIMENTAL,
        doc="An outbound connection was opened.",
        fields=_connection_fields(
            FieldSpec(
                "existing_connections",
                Kind.U64,
                "Outbound connections, including this one.",
                unit="count",
            )
        ),
    ),
    EventSpec(
        tp_id=5,
        subsystem="net",
        event="evicted_inbound_connection",
        stability=Stability.EXPERIMENTAL,
        doc="An inbound connection was chosen for eviction.",
        fields=_connection_fields(_time_established()),
    ),
    EventSpec(
        tp_id=6,
        subsystem="net",
        event="misbehaving_connection",
        stability=Stability.EXPERIMENTAL,
        doc="A peer misbehaved (PeerManagerImpl::Misbehaving). No score since v29.",
        fields=(
            _peer_id(),
            FieldSpec(
                "reason",
                Kind.CSTR,
                "Why the peer is considered misbehaving.",
                max_len=MISBEHAVING_MAX,
                bound_provenance="doc/tracing.md",
            ),
        ),
    ),
    EventSpec(
        tp_id=7,
        subsystem="net",
        event="closed_connection",
        stability=Stability.EXPERIMENTAL,
        doc="A connection's socket was closed, by us or by the peer.",
        fields=_connection_fields(_time_established()),
    ),
    # validation
    EventSpec(
        tp_id=8,
        subsystem="validation",
        event="block_connected",
        stability=Stability.STABLE,
        doc="A block was connected to the chain (end of Chainstate::ConnectBlock).",
        fields=(
            FieldSpec("block_hash", Kind.HASH32, "Block hash."),
            FieldSpec("height", Kind.I32, "Block height."),
            FieldSpec("transactions", Kind.U64, "Transactions in the block.", unit="count"),
            FieldSpec("inputs", Kind.I32, "Inputs in the block, coinbase included.", "count"),
            # sigops and duration are int64 at the probe ("-8@" in the real bitcoind's
            # notes); the reference doc says uint64.
            FieldSpec("sigops", Kind.I64, "Signature operation cost of the block.", "sigop cost"),
            FieldSpec("duration_ns", Kind.I64, "Time to connect the block.", unit="ns"),
        ),
        notes=("duration was in microseconds before v29 (bitcoin#29877)",),
    ),
    # utxocache
    EventSpec(
        tp_id=9,
        subsystem="utxocache",
        event="flush",
        stability=Stability.EXPERIMENTAL,
        doc="The coins cache was flushed or synced to disk (Chainstate::FlushStateToDisk).",
        fields=(
            FieldSpec("duration_us", Kind.I64, "Time the flush took.", unit="us"),
            FieldSpec("mode", Kind.U32, "Why the flush happened.", enum=FLUSH_MODE),
            FieldSpec("coins_count", Kind.U64, "Coins in the cache before the flush.", "count"),
            FieldSpec("coins_mem_usage", Kind.U64, "Cache memory usage before the flush.", "bytes"),
            FieldSpec("is_flush_for_prune", Kind.BOOL, "True if pruning caused the flush."),
        ),
    ),
    EventSpec(
        tp_id=10,
        subsystem="utxocache",
        event="add",
        stability=Stability.EXPERIMENTAL,
        doc="A coin was added to a coins cache (any CCoinsViewCache, temporary ones too).",
        fields=_utxo_fields("Height at which the coin was created."),
        ipc=IpcBinding("UtxoCacheTrace", "add", _UTXO_INFO),
    ),
    EventSpec(
        tp_id=11,
        subsystem="utxocache",
        event="spent",
        stability=Stability.EXPERIMENTAL,
        doc="A coin was spent in a coins cache.",
        fields=_utxo_fields("The coin's nHeight (height at which it was created)."),
        ipc=IpcBinding("UtxoCacheTrace", "spend", _UTXO_INFO),
    ),
    EventSpec(
        tp_id=12,
        subsystem="utxocache",
        event="uncache",
        stability=Stability.EXPERIMENTAL,
        doc="A coin was removed from a coins cache without being spent.",
        fields=_utxo_fields("The coin's nHeight (height at which it was created)."),
        ipc=IpcBinding("UtxoCacheTrace", "uncache", _UTXO_INFO),
    ),
    # mempool
    EventSpec(
        tp_id=13,
        subsystem="mempool",
        event="added",
        stability=Stability.STABLE,
        doc="A transaction entered the mempool (CTxMemPool::addNewTransaction).",
        fields=(
            _txid(),
            FieldSpec("vsize", Kind.I32, "Virtual size.", unit="vbytes"),
            FieldSpec("fee", Kind.I64, "Base fee (not modified by prioritisation).", "sat"),
        ),
    ),
    EventSpec(
        tp_id=14,
        subsystem="mempool",
        event="removed",
        stability=Stability.STABLE,
        doc="A transaction left the mempool (CTxMemPool::removeUnchecked).",
        fields=(
            _txid(),
            FieldSpec(
                "reason",
                Kind.CSTR,
                "Why the transaction was removed.",
                max_len=REMOVAL_REASON_MAX,
                bound_provenance="longest RemovalReasonToString() value",
                enum=REMOVAL_REASON,
            ),
            FieldSpec("vsize", Kind.I32, "Virtual size.", unit="vbytes"),
            FieldSpec("fee", Kind.I64, "Base fee.", unit="sat"),
            FieldSpec(
                "entry_time", Kind.U64, "When the transaction entered.", "s since UNIX epoch"
            ),
        ),
    ),
    EventSpec(
        tp_id=15,
        subsystem="mempool",
        event="replaced",
        stability=Stability.EXPERIMENTAL,
        doc="A mempool transaction was replaced (fires once per replaced transaction).",
        fields=(
            _txid("replaced_txid", "Txid of the replaced transaction."),
            FieldSpec("replaced_vsize", Kind.I32, "Virtual size of the replaced tx.", "vbytes"),
            FieldSpec("replaced_fee", Kind.I64, "Fee of the replaced transaction.", "sat"),
            FieldSpec(
                "replaced_entry_time",
                Kind.U64,
                "When the replaced transaction entered the mempool.",
                unit="s since UNIX epoch",
            ),
            _txid(
                "replacement_id",
                "Txid of the replacement, or the package hash if replaced_by_transaction is false.",
            ),
            FieldSpec(
                "replacement_vsize",
                Kind.I32,
                "Virtual size of the replacement (sub-package total for packages).",
                unit="vbytes",
            ),
            FieldSpec(
                "replacement_fee",
                Kind.I64,
                "Modified fees of the replacement (sub-package total for packages).",
                unit="sat",
            ),
            FieldSpec(
                "replaced_by_transaction",
                Kind.BOOL,
                "True if replacement_id is a txid, false if it is a package hash.",
            ),
        ),
        notes=("8 arguments since bitcoin#31122 (v29)",),
    ),
    EventSpec(
        tp_id=16,
        subsystem="mempool",
        event="rejected",
        stability=Stability.EXPERIMENTAL,
        doc="A single transaction was rejected by AcceptToMemoryPool (test_accept included).",
        fields=(
            _txid(),
            FieldSpec(
                "reason",
                Kind.CSTR,
                "Reject reason, e.g. 'min relay fee not met'.",
                max_len=REJECT_REASON_MAX,
                bound_provenance="contrib/tracing/mempool_monitor.py MAX_REJECT_REASON_LENGTH",
            ),
        ),
    ),
    # coin_selection (wallet builds only)
    EventSpec(
        tp_id=17,
        subsystem="coin_selection",
        event="selected_coins",
        stability=Stability.INTERNAL,
        doc="Coin selection finished and chose an algorithm's result.",
        fields=(
            _wallet_name(),
            FieldSpec(
                "algorithm",
                Kind.CSTR,
                "Coin selection algorithm that produced the result.",
                max_len=ALGORITHM_MAX,
                bound_provenance="longest GetAlgorithmName() value is 8; room for new ones",
                enum=SELECTION_ALGORITHM,
            ),
            FieldSpec("target", Kind.I64, "Selection target.", unit="sat"),
            FieldSpec("waste", Kind.I64, "Waste metric of the selection.", unit="sat"),
            FieldSpec("selected_value", Kind.I64, "Total value of selected inputs.", "sat"),
        ),
    ),
    EventSpec(
        tp_id=18,
        subsystem="coin_selection",
        event="normal_create_tx_internal",
        stability=Stability.INTERNAL,
        doc="CreateTransactionInternal finished (first attempt).",
        fields=(
            _wallet_name(),
            FieldSpec("success", Kind.BOOL, "True if a transaction was created."),
            FieldSpec("fee", Kind.I64, "Fee of the transaction, 0 on failure.", unit="sat"),
            FieldSpec("change_pos", Kind.I32, "Position of the change output, -1 if none."),
        ),
    ),
    EventSpec(
        tp_id=19,
        subsystem="coin_selection",
        event="attempting_aps_create_tx",
        stability=Stability.INTERNAL,
        doc="The wallet is about to try Avoid Partial Spends.",
        fields=(_wallet_name(),),
    ),
    EventSpec(
        tp_id=20,
        subsystem="coin_selection",
        event="aps_create_tx_internal",
        stability=Stability.INTERNAL,
        doc="The Avoid Partial Spends attempt finished.",
        fields=(
            _wallet_name(),
            FieldSpec("use_aps", Kind.BOOL, "True if the APS result will be used."),
            FieldSpec("success", Kind.BOOL, "True if a transaction was created."),
            FieldSpec("fee", Kind.I64, "Fee of the transaction.", unit="sat"),
            FieldSpec("change_pos", Kind.I32, "Position of the change output, -1 if none."),
        ),
    ),
)

# --- events that exist only over IPC ------------------------------------------------
# Cap'n Proto types them already, so they have no ring layout. Proposed interfaces carry
# Stability.PROPOSED: they exist only on Bitcoin Core PR branches (schemas/README.md).

MEMPOOL_REMOVAL_REASON_CODE = EnumSpec(
    name="MemPoolRemovalReason",
    doc="enum class MemPoolRemovalReason (src/kernel/mempool_removal_reason.h), as Int32.",
    values=tuple((code, symbol) for code, (_, symbol) in enumerate(REMOVAL_REASON.values)),
)

SYNC_STATE = EnumSpec(
    name="SynchronizationState",
    doc="enum class SynchronizationState in src/validation.h.",
    values=((0, "INIT_REINDEX"), (1, "INIT_DOWNLOAD"), (2, "POST_INIT")),
)


def _tx_fields() -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("tx", Kind.DATA, "The serialized transaction, as the node sent it."),
        FieldSpec("txid", Kind.HASH32, "Txid, computed by the bridge from tx."),
        FieldSpec("wtxid", Kind.HASH32, "Wtxid, computed by the bridge from tx."),
        FieldSpec("vsize", Kind.I64, "Virtual size, computed by the bridge from tx.", "vbytes"),
    )


_TX_DERIVED = ("txid", "wtxid", "vsize")


def _role_fields() -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("role_validated", Kind.BOOL, "ChainstateRole.validated."),
        FieldSpec("role_historical", Kind.BOOL, "ChainstateRole.historical (background sync)."),
    )


def _block_info_fields() -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("block_hash", Kind.HASH32, "Block hash (BlockInfo.hash)."),
        FieldSpec("prev_hash", Kind.HASH32, "Previous block hash (BlockInfo.prevHash)."),
        FieldSpec("height", Kind.I32, "Block height (-1 if not set)."),
        FieldSpec("file_number", Kind.I32, "blk file number (-1 if not set)."),
        FieldSpec("data_pos", Kind.U32, "Position in the blk file."),
        FieldSpec(
            "chain_time_max", Kind.U32, "Max block time up to this block.", "s since UNIX epoch"
        ),
        FieldSpec("block", Kind.DATA, "Serialized block, when the node sends it (else empty)."),
    )


_BLOCK_INFO = (
    ("block_hash", "block.hash"),
    ("prev_hash", "block.prevHash"),
    ("height", "block.height"),
    ("file_number", "block.fileNumber"),
    ("data_pos", "block.dataPos"),
    ("chain_time_max", "block.chainTimeMax"),
    ("block", "block.data"),
)
_ROLE = (("role_validated", "role.validated"), ("role_historical", "role.historical"))


def _tip_fields() -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("sync_state", Kind.I32, "Synchronization state.", enum=SYNC_STATE),
        FieldSpec("height", Kind.I32, "Tip height."),
        FieldSpec("block_time", Kind.I64, "Tip block time.", "s since UNIX epoch"),
        FieldSpec("block_hash", Kind.HASH32, "Tip hash."),
        FieldSpec("verification_progress", Kind.F64, "Estimated verification progress, 0..1."),
    )


_TIP = (
    ("sync_state", "syncState"),
    ("height", "tip.blockHeight"),
    ("block_time", "tip.blockTime"),
    ("block_hash", "tip.blockHash"),
    ("verification_progress", "verificationProgress"),
)


def _proposed(
    tp_id: int,
    context: str,
    subsystem: str,
    event: str,
    doc: str,
    fields: tuple[FieldSpec, ...],
    ipc: IpcBinding,
    since: str,
) -> EventSpec:
    return EventSpec(
        tp_id=tp_id,
        subsystem=subsystem,
        event=event,
        context=context,
        stability=Stability.PROPOSED,
        doc=doc,
        fields=fields,
        usdt=False,
        ipc=ipc,
        since=since,
    )


# Node's enum class ConnectionType, as the Int32 NodeStats.connType carries it; the
# symbols are CONNECTION_TYPE's, so the Avro enum is the same type as the tracepoints'.
CONNECTION_TYPE_CODE = EnumSpec(
    name="ConnectionType",
    doc=CONNECTION_TYPE.doc + " Over IPC: enum class ConnectionType (src/node/connection_types.h).",
    values=(
        (0, "INBOUND"),
        (2, "MANUAL"),
        (3, "FEELER"),
        (1, "OUTBOUND_FULL_RELAY"),
        (4, "BLOCK_RELAY_ONLY"),
        (5, "ADDR_FETCH"),
        (6, "PRIVATE_BROADCAST"),
    ),
)

PEER = RecordSpec(
    name="PeerStats",
    doc="One connected peer, from Node.getNodesStats (CNodeStats).",
    fields=(
        FieldSpec("peer_id", Kind.I64, "Peer id (nodeid)."),
        FieldSpec("addr", Kind.TEXT, "Address and port (addrName).", address=True),
        FieldSpec("inbound", Kind.BOOL, "True for an inbound connection."),
        FieldSpec("conn_type", Kind.I32, "Connection type.", enum=CONNECTION_TYPE_CODE),
        FieldSpec("network", Kind.I32, "Network the peer is reached through.", enum=NETWORK),
        FieldSpec("version", Kind.I32, "Protocol version the peer announced."),
        FieldSpec("subver", Kind.TEXT, "User agent the peer announced (cleanSubVer)."),
        FieldSpec("services", Kind.U64, "Service bits the peer announced."),
        FieldSpec("starting_height", Kind.I32, "Best height the peer announced."),
        FieldSpec("bytes_sent", Kind.U64, "Bytes sent to the peer.", "bytes"),
        FieldSpec("bytes_recv", Kind.U64, "Bytes received from the peer.", "bytes"),
        FieldSpec("ping_time_us", Kind.I64, "Last ping time.", "us"),
        FieldSpec("min_ping_time_us", Kind.I64, "Lowest ping time.", "us"),
        FieldSpec("time_connected", Kind.I64, "When it connected.", "s since UNIX epoch"),
        FieldSpec("last_send", Kind.I64, "Last send.", "s since UNIX epoch"),
        FieldSpec("last_recv", Kind.I64, "Last receive.", "s since UNIX epoch"),
        FieldSpec("bip152_hb_to", Kind.BOOL, "We asked it for high-bandwidth compact blocks."),
        FieldSpec("bip152_hb_from", Kind.BOOL, "It asked us for high-bandwidth compact blocks."),
        FieldSpec("relay_txes", Kind.BOOL, "It wants transactions relayed."),
    ),
)

BAN_ENTRY = RecordSpec(
    name="BanEntry",
    doc="One ban, from Node.getBanned: the serialized CSubNet and CBanEntry.",
    fields=(
        FieldSpec(
            "subnet",
            Kind.DATA,
            "Serialized CSubNet. Empty when privacy.peer_addr redacts addresses.",
            address=True,
        ),
        FieldSpec("entry", Kind.DATA, "Serialized CBanEntry (creation time, ban until)."),
    ),
)

FEE_ESTIMATE = RecordSpec(
    name="FeeEstimate",
    doc="Chain.estimateSmartFee for one confirmation target.",
    fields=(
        FieldSpec("target", Kind.I32, "Confirmation target asked for.", "blocks"),
        FieldSpec("fee_rate", Kind.I64, "Estimated fee rate (0 if none).", "sat/kvB"),
    ),
)

# Snapshots of node state, polled every ipc.poll_interval_s. Each combines several
# methods' results, so the binding names "<method>.<result field>".
_POLLED_SNAPSHOTS: tuple[EventSpec, ...] = (
    _proposed(
        50,
        "node",
        "node",
        "peers",
        "Snapshot of the connected peers (Node.getNodesStats).",
        (FieldSpec("peers", Kind.LIST, "One entry per peer.", items=PEER),),
        IpcBinding("Node", "getNodesStats", (("peers", "getNodesStats.stats"),), polled=True),
        "PR #10102",
    ),
    _proposed(
        51,
        "node",
        "node",
        "mempool_stats",
        "Snapshot of the mempool's size and fee floors.",
        (
            FieldSpec("size", Kind.U64, "Transactions in the mempool.", "count"),
            FieldSpec("dynamic_usage", Kind.U64, "Memory the mempool uses.", "bytes"),
            FieldSpec("max_usage", Kind.U64, "The mempool's memory limit.", "bytes"),
            FieldSpec("min_fee", Kind.I64, "Minimum fee rate to enter the mempool.", "sat/kvB"),
            FieldSpec("relay_min_fee", Kind.I64, "Minimum relay fee rate.", "sat/kvB"),
        ),
        IpcBinding(
            "Node",
            "getMempoolSize",
            (
                ("size", "getMempoolSize.result"),
                ("dynamic_usage", "getMempoolDynamicUsage.result"),
                ("max_usage", "getMempoolMaxUsage.result"),
                ("min_fee", "Chain.mempoolMinFee.result"),
                ("relay_min_fee", "Chain.relayMinFee.result"),
            ),
            polled=True,
        ),
        "PR #10102, PR #29409",
    ),
    _proposed(
        52,
        "node",
        "node",
        "chain_stats",
        "Snapshot of the chain's progress.",
        (
            FieldSpec("header_height", Kind.I32, "Best header height (-1 if none)."),
            FieldSpec("header_time", Kind.I64, "Best header time.", "s since UNIX epoch"),
            FieldSpec("blocks", Kind.I32, "Height of the active tip."),
            FieldSpec("best_block_hash", Kind.HASH32, "Hash of the active tip."),
            FieldSpec("verification_progress", Kind.F64, "Estimated progress, 0..1."),
            FieldSpec("initial_block_download", Kind.BOOL, "True during initial block download."),
            FieldSpec("have_pruned", Kind.BOOL, "True if blocks were pruned."),
            FieldSpec("prune_height", Kind.I32, "Lowest height with block data (-1: none pruned)."),
        ),
        IpcBinding(
            "Node",
            "getHeaderTip",
            (
                ("header_height", "getHeaderTip.height"),
                ("header_time", "getHeaderTip.blockTime"),
                ("blocks", "getNumBlocks.result"),
                ("best_block_hash", "getBestBlockHash.result"),
                ("verification_progress", "getVerificationProgress.result"),
                ("initial_block_download", "isInitialBlockDownload.result"),
                ("have_pruned", "Chain.havePruned.result"),
                ("prune_height", "Chain.getPruneHeight.result"),
            ),
            polled=True,
        ),
        "PR #10102, PR #29409",
    ),
    _proposed(
        53,
        "node",
        "node",
        "network_stats",
        "Snapshot of the node's networking.",
        (
            FieldSpec("network_active", Kind.BOOL, "Whether networking is active."),
            FieldSpec("connections_in", Kind.U64, "Inbound connections.", "count"),
            FieldSpec("connections_out", Kind.U64, "Outbound connections.", "count"),
            FieldSpec("bytes_recv", Kind.I64, "Bytes received since start.", "bytes"),
            FieldSpec("bytes_sent", Kind.I64, "Bytes sent since start.", "bytes"),
            FieldSpec("banned", Kind.LIST, "The ban list.", items=BAN_ENTRY),
        ),
        IpcBinding(
            "Node",
            "getNetworkActive",
            (
                ("network_active", "getNetworkActive.result"),
                ("connections_in", "getNodeCount.result"),
                ("connections_out", "getNodeCount.result"),
                ("bytes_recv", "getTotalBytesRecv.result"),
                ("bytes_sent", "getTotalBytesSent.result"),
                ("banned", "getBanned.banmap"),
            ),
            polled=True,
        ),
        "PR #10102",
    ),
    _proposed(
        54,
        "chain",
        "node",
        "fee_estimates",
        "Snapshot of fee estimates for a few confirmation targets (Chain.estimateSmartFee).",
        (FieldSpec("estimates", Kind.LIST, "One entry per target.", items=FEE_ESTIMATE),),
        IpcBinding(
            "Chain", "estimateSmartFee", (("estimates", "estimateSmartFee.result"),), polled=True
        ),
        "PR #29409",
    ),
)

IPC_EVENTS: tuple[EventSpec, ...] = (
    _proposed(
        32,
        "chain",
        "mempool",
        "transaction_added_to_mempool",
        "ChainNotifications.transactionAddedToMempool: a transaction entered the mempool.",
        _tx_fields(),
        IpcBinding("ChainNotifications", "transactionAddedToMempool", (("tx", "tx"),), _TX_DERIVED),
        "PR #29409",
    ),
    _proposed(
        33,
        "chain",
        "mempool",
        "transaction_removed_from_mempool",
        "ChainNotifications.transactionRemovedFromMempool: a transaction left the mempool.",
        (
            *_tx_fields(),
            FieldSpec("reason", Kind.I32, "Why it was removed.", enum=MEMPOOL_REMOVAL_REASON_CODE),
        ),
        IpcBinding(
            "ChainNotifications",
            "transactionRemovedFromMempool",
            (("tx", "tx"), ("reason", "reason")),
            _TX_DERIVED,
        ),
        "PR #29409",
    ),
    _proposed(
        34,
        "chain",
        "validation",
        "block_connected",
        "ChainNotifications.blockConnected: a block was connected to a chainstate.",
        (*_role_fields(), *_block_info_fields()),
        IpcBinding("ChainNotifications", "blockConnected", (*_ROLE, *_BLOCK_INFO)),
        "PR #29409",
    ),
    _proposed(
        35,
        "chain",
        "validation",
        "block_disconnected",
        "ChainNotifications.blockDisconnected: a block was disconnected (reorg).",
        _block_info_fields(),
        IpcBinding("ChainNotifications", "blockDisconnected", _BLOCK_INFO),
        "PR #29409",
    ),
    _proposed(
        36,
        "chain",
        "validation",
        "updated_block_tip",
        "ChainNotifications.updatedBlockTip: the active tip changed (no arguments).",
        (),
        IpcBinding("ChainNotifications", "updatedBlockTip"),
        "PR #29409",
    ),
    _proposed(
        37,
        "chain",
        "utxocache",
        "chain_state_flushed",
        "ChainNotifications.chainStateFlushed: the chainstate was flushed to disk.",
        (*_role_fields(), FieldSpec("locator", Kind.DATA, "Serialized block locator.")),
        IpcBinding("ChainNotifications", "chainStateFlushed", (*_ROLE, ("locator", "locator"))),
        "PR #29409",
    ),
    _proposed(
        40,
        "node",
        "node",
        "num_connections_changed",
        "Node.handleNotifyNumConnectionsChanged: the number of connections changed.",
        (FieldSpec("num_connections", Kind.I32, "New number of connections.", "count"),),
        IpcBinding(
            "NotifyNumConnectionsChangedCallback",
            "call",
            (("num_connections", "newNumConnections"),),
        ),
        "PR #10102",
    ),
    _proposed(
        41,
        "node",
        "node",
        "network_active_changed",
        "Node.handleNotifyNetworkActiveChanged: networking was switched on or off.",
        (FieldSpec("network_active", Kind.BOOL, "Whether networking is now active."),),
        IpcBinding(
            "NotifyNetworkActiveChangedCallback", "call", (("network_active", "networkActive"),)
        ),
        "PR #10102",
    ),
    _proposed(
        42,
        "node",
        "node",
        "alert_changed",
        "Node.handleNotifyAlertChanged: the node's warnings changed (no arguments).",
        (),
        IpcBinding("NotifyAlertChangedCallback", "call"),
        "PR #10102",
    ),
    _proposed(
        43,
        "node",
        "node",
        "banned_list_changed",
        "Node.handleBannedListChanged: the ban list changed (no arguments).",
        (),
        IpcBinding("BannedListChangedCallback", "call"),
        "PR #10102",
    ),
    _proposed(
        44,
        "node",
        "node",
        "block_tip",
        "Node.handleNotifyBlockTip: the active chain tip changed.",
        _tip_fields(),
        IpcBinding("NotifyBlockTipCallback", "call", _TIP),
        "PR #10102",
    ),
    _proposed(
        45,
        "node",
        "node",
        "header_tip",
        "Node.handleNotifyHeaderTip: the best header changed.",
        _tip_fields(),
        IpcBinding("NotifyHeaderTipCallback", "call", _TIP),
        "PR #10102",
    ),
    *_POLLED_SNAPSHOTS,
    EventSpec(
        tp_id=60,
        subsystem="validation",
        event="tip_changed",
        context="mining",
        stability=Stability.EXPERIMENTAL,
        doc="The tip seen through the merged Mining interface (getTip, then waitTipChanged): "
        "what a real bitcoin-node offers over IPC today, with no proposal applied.",
        fields=(
            FieldSpec("block_hash", Kind.HASH32, "Tip hash (BlockRef.hash)."),
            FieldSpec("height", Kind.I32, "Tip height (BlockRef.height)."),
            FieldSpec("initial_block_download", Kind.BOOL, "Mining.isInitialBlockDownload()."),
        ),
        usdt=False,
        ipc=IpcBinding(
            "Mining",
            "waitTipChanged",
            (("block_hash", "result.hash"), ("height", "result.height")),
            ("initial_block_download",),
        ),
        since="v30.0",
    ),
)

SUBSYSTEMS: tuple[str, ...] = ("net", "validation", "utxocache", "mempool", "coin_selection")
"""The USDT subsystems: each has a ring buffer and a topic."""
TOPIC_SUBSYSTEMS: tuple[str, ...] = (*SUBSYSTEMS, "node")
"""Every event topic; ``node`` carries IPC node notifications and polled snapshots."""

ALL_EVENTS: tuple[EventSpec, ...] = (*EVENTS, *IPC_EVENTS)
BY_NAME: dict[str, EventSpec] = {spec.name: spec for spec in ALL_EVENTS}
BY_TP_ID: dict[int, EventSpec] = {spec.tp_id: spec for spec in ALL_EVENTS}


def _check_catalogue() -> None:
    """Fail at import time on a catalogue that could corrupt recorded data."""
    ids = [spec.tp_id for spec in ALL_EVENTS]
    # The native encoder indexes streams by tp_id in a 256-slot table.
    if len(set(ids)) != len(ids) or min(ids) < 1 or max(ids) > 255:
        raise ValueError("tp_id values must be unique and in 1..255")
    if len(BY_NAME) != len(ALL_EVENTS):
        raise ValueError("event names must be unique")
    for spec in IPC_EVENTS:
        if spec.usdt or spec.ipc is None or spec.subsystem not in TOPIC_SUBSYSTEMS:
            raise ValueError(f"{spec.name}: IPC-only events need an IPC binding and a topic")
    for spec in EVENTS:
        if not spec.usdt:
            raise ValueError(f"{spec.name}: EVENTS holds the USDT tracepoints")
        if any(f.kind not in USDT_KINDS for f in spec.fields):
            raise ValueError(f"{spec.name}: a USDT argument needs a ring storage rule")
        if spec.subsystem not in SUBSYSTEMS:
            raise ValueError(f"{spec.name}: unknown subsystem")
        if len(spec.fields) > 12:
            raise ValueError(f"{spec.name}: USDT allows at most 12 arguments")
        payloads = [f for f in spec.fields if f.kind is Kind.PAYLOAD]
        if len(payloads) > 1:
            raise ValueError(f"{spec.name}: at most one payload field")
        for payload in payloads:
            assert payload.length_of is not None
            length = spec.field_named(payload.length_of)
            if length.kind is not Kind.U64:
                raise ValueError(f"{spec.name}: payload length must be a u64 argument")
            # The generated handler reads arguments in order and bounds the payload copy by
            # the length it already read; a length read later would capture nothing.
            if spec.fields.index(length) > spec.fields.index(payload):
                raise ValueError(f"{spec.name}: the payload's length must come before it")


_check_catalogue()
