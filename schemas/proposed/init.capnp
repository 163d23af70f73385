# Init for the "proposed" set: master's Init (d84fc352) plus the factories for
# the proposed interfaces. How a client obtains these is not settled upstream;
# this file is tracebridge's choice (see ../README.md, "The Init choice"):
#   @5 makeNetTracing: the same ordinal and result interface as
#      Init.makeTracing @5 on 0xB10C's prototype branch (src/ipc/capnp/
#      init.capnp at 3330e971), so it is wire-compatible with that node.
#      Renamed because two Tracing interfaces exist here; names are not on
#      the wire, ordinals and interface IDs are.
#   @6 makeUtxoTracing: PR #32898 had makeTracing @3 on a v30-era Init,
#      which collides with makeMining @3 since v31; moved to @6.
#   @7 makeChain, @8 makeNode: no upstream Init method exists; ours.
# Distributed under the MIT software license.

@0xf2c5cfa319406aa6;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Proxy = import "/mp/proxy.capnp";
$Proxy.include("interfaces/echo.h");
$Proxy.include("interfaces/init.h");
$Proxy.include("interfaces/mining.h");
$Proxy.include("interfaces/rpc.h");
$Proxy.include("interfaces/tracing.h");
$Proxy.includeTypes("ipc/capnp/init-types.h");

using Echo = import "echo.capnp";
using Mining = import "mining.capnp";
using Rpc = import "rpc.capnp";
using NetTracing = import "tracing_net.capnp";
using UtxoTracing = import "tracing_utxo.capnp";
using Chain = import "chain.capnp";
using Node = import "node.capnp";

interface Init $Proxy.wrap("interfaces::Init") {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    makeEcho @1 (context :Proxy.Context) -> (result :Echo.Echo);

    makeMiningOld2 @2 () -> ();
    # DEPRECATED: the node answers every call with the error
    # "Old mining interface (@2) not supported. Please update your client!"

    makeMining @3 (context :Proxy.Context) -> (result :Mining.Mining);
    makeRpc @4 (context :Proxy.Context) -> (result :Rpc.Rpc);

    makeNetTracing @5 (context :Proxy.Context) -> (result :NetTracing.Tracing);
    makeUtxoTracing @6 (context :Proxy.Context) -> (result :UtxoTracing.Tracing);
    makeChain @7 (context :Proxy.Context) -> (result :Chain.Chain);
    makeNode @8 (context :Proxy.Context) -> (result :Node.Node);
}
