# A message of the bridge's own that holds one NetMessageTrace batch, so the batch can be
# copied out of an incoming call and serialised in one C++ step
# (bridge/sources/ipc/callbacks.py), then read without pycapnp by the native encoder.
# Loaded with the "proposed" set's parser: NetMessage is that set's type.
@0xe19f0b6a5b3c7d21;

using Net = import "/tracing_net.capnp";

struct NetMessageBatch {
  messages @0 :List(Net.NetMessage);
}
