# src/ipc/capnp/tracing.capnp of 0xB10C's IPC tracing prototype branch
# (commits 10cb996b, e2dfb18b; the basis of the RFC #35142 ping benchmark);
# written for tracebridge from the reference (bitcoin-tracing.md section 4.2).
# PROPOSED, personal branch. maxQueueBytes @6 and maxBatchBytes @7 are from
# the later version. Renamed tracing_net.capnp (see tracing_utxo.capnp).
# Distributed under the MIT software license.

@0xca4c717e6cf65a84;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Handler = import "handler.capnp";
using Proxy = import "/mp/proxy.capnp";
$Proxy.include("interfaces/tracing.h");
$Proxy.includeTypes("ipc/capnp/tracing-types.h");

interface Tracing $Proxy.wrap("interfaces::Tracing") {
    destroy @0 (context :Proxy.Context) -> ();
    traceNetMessages @1 (context :Proxy.Context, options :NetMessageTraceOptions, callback :NetMessageTrace) -> (result :Handler.Handler);
}

interface NetMessageTrace $Proxy.wrap("interfaces::NetMessageTrace") {
    # Implemented by the tracing client. Called by a dedicated node thread,
    # one batch at a time. dropped counts the events discarded since the
    # previous batch because this subscriber's queue was full.
    destroy @0 (context :Proxy.Context) -> ();
    messages @1 (context :Proxy.Context, messages :List(NetMessage), dropped :UInt64) -> ();
}

struct NetMessageTraceOptions $Proxy.wrap("interfaces::NetMessageTraceOptions") {
    inbound @0 :Bool = true $Proxy.name("inbound");
    outbound @1 :Bool = true $Proxy.name("outbound");
    maxPayloadBytes @2 :UInt32 = 0 $Proxy.name("max_payload_bytes");
    # 0 = no payload.
    maxQueueEvents @3 :UInt32 = 65536 $Proxy.name("max_queue_events");
    maxBatchEvents @4 :UInt32 = 1024 $Proxy.name("max_batch_events");
    maxBatchWaitUs @5 :UInt32 = 1000 $Proxy.name("max_batch_wait_us");
    maxQueueBytes @6 :UInt64 = 67108864 $Proxy.name("max_queue_bytes");
    maxBatchBytes @7 :UInt64 = 4194304 $Proxy.name("max_batch_bytes");
}

struct NetMessage $Proxy.wrap("interfaces::NetMessageInfo") {
    inbound @0 :Bool $Proxy.name("inbound");
    peerId @1 :Int64 $Proxy.name("peer_id");
    peerAddr @2 :Text $Proxy.name("peer_addr");
    connType @3 :Text $Proxy.name("conn_type");
    msgType @4 :Text $Proxy.name("msg_type");
    msgSize @5 :UInt64 $Proxy.name("msg_size");
    # Full payload size, even when payload is cut.
    payload @6 :Data $Proxy.name("payload");
    # First maxPayloadBytes bytes of the payload.
    timestampUs @7 :Int64 $Proxy.name("timestamp_us");
    # steady_clock microseconds: CLOCK_MONOTONIC on Linux.
}
