# Bitcoin Core src/ipc/capnp/common.capnp, written for tracebridge from the
# reference (bitcoin-tracing.md section 3.2). See ../README.md.
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
