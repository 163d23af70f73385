# src/ipc/capnp/tracing.capnp of PR #32898 "POC: IPC tracing interface"
# (ryanofsky, closed unmerged), at commit 8e09fbe805fe; written for
# tracebridge from the reference (bitcoin-tracing.md section 4.1). PROPOSED.
# Renamed tracing_utxo.capnp because the 0xB10C prototype's net tracing file
# is also called tracing.capnp (file names are not on the wire; IDs are).
# Distributed under the MIT software license.

@0xfcbbd3f49874128e;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Common = import "common.capnp";
using Handler = import "handler.capnp";
using Proxy = import "/mp/proxy.capnp";

$Proxy.include("interfaces/tracing.h");
$Proxy.includeTypes("ipc/capnp/tracing-types.h");

interface Tracing $Proxy.wrap("interfaces::Tracing") {
    traceUtxoCache @0 (context :Proxy.Context, callback :UtxoCacheTrace) -> (result :Handler.Handler);
}

interface UtxoCacheTrace $Proxy.wrap("interfaces::UtxoCacheTrace") {
    # Implemented by the client. add/spend/uncache take no context, so on the
    # client they run on its event loop, and in the node each one is a
    # blocking round trip of the validation thread.
    destroy @0 (context :Proxy.Context) -> ();
    add @1 (utxoInfo :UtxoInfo) -> ();
    spend @2 (utxoInfo :UtxoInfo) -> ();
    uncache @3 (utxoInfo :UtxoInfo) -> ();
}

struct UtxoInfo $Proxy.wrap("interfaces::UtxoInfo") {
    outpointHash @0 :Data $Proxy.name("outpoint_hash");
    # Txid, 32 bytes in internal byte order.
    outpointN @1 :UInt32 $Proxy.name("outpoint_n");
    height @2 :UInt32 $Proxy.name("height");
    value @3 :Int64 $Proxy.name("value");
    isCoinbase @4 :Bool $Proxy.name("is_coinbase");
}
