# Bitcoin Core v30.x src/ipc/capnp/mining.capnp, written for tracebridge.
# Only the prefix of Mining whose ordinals the reference establishes is
# declared (isTestChain @0 .. waitTipChanged @3, the methods the bridge calls).
# v30 also had createNewBlock/checkBlock without a context parameter and a
# BlockTemplate with getCoinbaseCommitment/getWitnessCommitmentIndex
# (removed in v31), whose exact v30 signatures the reference does not give.
# Distributed under the MIT software license.
#
# NOT VERIFIED: whether v30.0 declares waitTipChanged's timeout with the
# default .maxDouble (as master does). Defaults are XOR-encoded on the wire, so
# if v30.0 has no default, a timeout sent with this schema is misread by a real
# v30 node. See ../README.md.

@0xc77d03df6a41b505;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Common = import "common.capnp";
using Proxy = import "/mp/proxy.capnp";
$Proxy.include("interfaces/mining.h");
$Proxy.includeTypes("ipc/capnp/mining-types.h");

const maxMoney :Int64 = 2100000000000000;
const maxDouble :Float64 = 1.7976931348623157e308;

interface Mining $Proxy.wrap("interfaces::Mining") {
    isTestChain @0 (context :Proxy.Context) -> (result :Bool);
    isInitialBlockDownload @1 (context :Proxy.Context) -> (result :Bool);
    getTip @2 (context :Proxy.Context) -> (result :Common.BlockRef, hasResult :Bool);
    waitTipChanged @3 (context :Proxy.Context, currentTip :Data, timeout :Float64 = .maxDouble) -> (result :Common.BlockRef);
    # timeout is in milliseconds (C++ MillisecondsDouble).
}
