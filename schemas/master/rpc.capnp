# Bitcoin Core src/ipc/capnp/rpc.capnp (bitcoin#32297, master only), written
# for tracebridge from the reference (bitcoin-tracing.md section 3.2).
# Distributed under the MIT software license.

@0x9c3505dc45e146ac;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ipc::capnp::messages");

using Proxy = import "/mp/proxy.capnp";
$Proxy.include("interfaces/rpc.h");
$Proxy.includeTypes("ipc/capnp/rpc-types.h");

interface Rpc $Proxy.wrap("interfaces::Rpc") {
    # JSON-RPC over IPC, as used by bitcoin-cli -ipcconnect. request is a
    # JSON-RPC request object; result is the JSON reply.
    executeRpc @0 (context :Proxy.Context, request :Text, uri :Text, user :Text) -> (result :Text);
}
