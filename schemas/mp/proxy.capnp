# libmultiprocess's schema, as vendored in Bitcoin Core at
# src/ipc/libmultiprocess/include/mp/proxy.capnp (MP_MAJOR_VERSION 10).
# Written for tracebridge from the reference (bitcoin-tracing.md section 3.2);
# the file ID, interface names and ordinals below are what goes on the wire.
# Distributed under the MIT software license.

@0xcc316e3f71a040fb;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("mp");

annotation include(file): Text;
# C++ header the generated proxy code must include.

annotation includeTypes(file): Text;
# C++ header with the custom type conversions the generated code needs.

annotation wrap(interface, struct): Text;
# Name of the C++ interface (or struct) a capnp interface (or struct) wraps.

annotation count(param, struct, interface): Int32;
# How many C++ parameters one capnp parameter stands for. 0 means the value is
# filled from context rather than passed by the caller (ThreadMap, Context).

annotation exception(param): Text;
# A result field that carries a C++ exception of the named type.

annotation name(field, method): Text;
# Name of the C++ field or method when it differs from the capnp one.

annotation skip(field): Void;
# Field handled by custom code (synonym for count(0)).

interface ThreadMap $count(0) {
    # Lets the other side create a named thread here. Passed to
    # Init.construct by the client and returned by the server, so each side
    # can make threads on the other: the node uses the client's map to get a
    # thread to run context-taking callbacks on.
    makeThread @0 (name :Text) -> (result :Thread);
}

interface Thread {
    # Handle of one thread made by makeThread.
    getName @0 () -> (result :Text);
}

struct Context $count(0) {
    # Execution context passed as the first parameter of most methods.

    thread @0 :Thread;
    # Thread of the callee that should run the call (made through the
    # callee's ThreadMap).

    callbackThread @1 :Thread;
    # Thread of the caller, on which callbacks made during the call run.
}
