# Bitcoin Core src/ipc/capnp/common.capnp for the "proposed" set: master's
# BlockRef plus the generic structs that the proposed chain.capnp (PR #29409)
# and node.capnp (PR #10102) use. Those structs are taken from a PR-branch
# common.capnp (bitcoin/bitcoin 0527b3d6); UniValue and PairStr64 are NOT
# verified (see ../README.md). None of them is on the path the bridge uses
# except Pair(Data, Data) (Node.getBanned) and PairStr64 (NodeStats).
# Distributed under the MIT software license.

@0xcd2c6232cb484a28;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Proxy = import "/mp/proxy.capnp";
$Proxy.include("ipc/capnp/common.h");
$Proxy.includeTypes("ipc/capnp/common-types.h");

struct BlockRef $Proxy.wrap("interfaces::BlockRef") {
    hash @0 :Data;
    # Block hash, 32 bytes in internal (little-endian) byte order.
    height @1 :Int32;
}

struct FeeCalculation $Proxy.wrap("FeeCalculation") {
    est @0 :EstimationResult;
    reason @1 :Int32;
    desiredTarget @2 :Int32;
    returnedTarget @3 :Int32;
    bestHeight @4 :UInt32 $Proxy.name("best_height");
}

struct EstimationResult $Proxy.wrap("EstimationResult") {
    pass @0 :EstimatorBucket;
    fail @1 :EstimatorBucket;
    decay @2 :Float64;
    scale @3 :UInt32;
}

struct EstimatorBucket $Proxy.wrap("EstimatorBucket") {
    start @0 :Float64;
    end @1 :Float64;
    withinTarget @2 :Float64;
    totalConfirmed @3 :Float64;
    inMempool @4 :Float64;
    leftMempool @5 :Float64;
}

struct Settings $Proxy.wrap("common::Settings") {
    forcedSettings @0 :List(Pair(Text, Text)) $Proxy.name("forced_settings");
    commandLineOptions @1 :List(Pair(Text, List(Text))) $Proxy.name("command_line_options");
    rwSettings @2 :List(Pair(Text, Text)) $Proxy.name("rw_settings");
    roConfig @3 :List(Pair(Text, List(Pair(Text, List(Text))))) $Proxy.name("ro_config");
}

struct GlobalArgs $Proxy.count(0) {
    settings @0 :Settings;
    configPath @1 :Text;
}

struct BilingualStr $Proxy.wrap("bilingual_str") {
    original @0 :Text;
    translated @1 :Text;
}

struct Result(Value) {
    value @0 :Value;
    error @1 :BilingualStr;
}

struct ResultVoid(Value) {
    # Wrapper for util::Result<void>.
    error @0 :BilingualStr;
}

struct Pair(Key, Value) {
    key @0 :Key;
    value @1 :Value;
}

struct PairInt64(Key) {
    key @0 :Key;
    value @1 :Int64;
}

struct PairUInt64(Key) {
    key @0 :Key;
    value @1 :UInt64;
}

struct PairStr64 {
    # NOT VERIFIED: used by NodeStats at PR #10102 commit 101faa0a, whose
    # common.capnp was not read. Same layout as PairUInt64(Text), which the
    # newer branch uses in its place.
    key @0 :Text;
    value @1 :UInt64;
}

struct UniValue {
    # NOT VERIFIED: used by Node.executeRpc at PR #10102 commit 101faa0a.
    # JSON text plus its UniValue type code.
    type @0 :Int32;
    value @1 :Text;
}
