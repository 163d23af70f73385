# Bitcoin Core src/ipc/capnp/handler.capnp from the unmerged multiprocess PR
# branches (#10102, #29409, #32898), written for tracebridge from the
# reference (bitcoin-tracing.md section 4.1). PROPOSED, not in master.
# Distributed under the MIT software license.

@0xebd8f46e2f369076;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Proxy = import "/mp/proxy.capnp";
$Proxy.include("interfaces/handler.h");
$Proxy.includeTypes("ipc/capnp/handler-types.h");

interface Handler $Proxy.wrap("interfaces::Handler") {
    # Returned by every subscribe-style method. destroy or disconnect
    # unsubscribes; so does releasing the last reference to it, because the
    # node then destroys the C++ handler, whose destructor disconnects.
    destroy @0 (context :Proxy.Context) -> ();
    disconnect @1 (context :Proxy.Context) -> ();
}
