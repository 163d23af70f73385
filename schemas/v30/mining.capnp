# Bitcoin Core v30.x src/ipc/capnp/mining.capnp, written for tracebridge.
# Only the prefix of Mining whose ordinals the reference establishes is
# declared (isTestChain @0 .. waitTipChanged @3, the methods the bridge calls).
# v30 also had createNewBlock/checkBlock without a context parameter and a
# BlockTemplate with getCoinbaseCommitment/getWitnessCommitmentIndex
# (removed in v31), whose exact v30 signatures the reference does not give.
# Distributed under the MIT software license.
#
# waitTipChanged's timeout has NO default in v30: the defaults of master's
# mining.capnp (timeout = .maxDouble, the BlockCreateOptions/BlockWaitOptions
# ones) came with bitcoin#34568 ("mining: Break compatibility with existing IPC
# mining clients", v31.0), an incompatible change because Cap'n Proto stores a
# field XORed with its default: a timeout sent with master's default would be
# misread by a v30 node. The bridge always sends the timeout. master's
# maxMoney/maxDouble constants are not declared here: nothing in this prefix
# uses them (constants are not on the wire). See ../README.md.

@0xc77d03df6a41b505;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Common = import "common.capnp";
using Proxy = import "/mp/proxy.capnp";
$Proxy.include("interfaces/mining.h");
$Proxy.includeTypes("ipc/capnp/mining-types.h");

interface Mining $Proxy.wrap("interfaces::Mining") {
    isTestChain @0 (context :Proxy.Context) -> (result :Bool);
    isInitialBlockDownload @1 (context :Proxy.Context) -> (result :Bool);
    getTip @2 (context :Proxy.Context) -> (result :Common.BlockRef, hasResult :Bool);
    waitTipChanged @3 (context :Proxy.Context, currentTip :Data, timeout :Float64) -> (result :Common.BlockRef);
    # timeout is in milliseconds (C++ MillisecondsDouble).
}
