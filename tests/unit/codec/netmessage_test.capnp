# The 0xB10C prototype's NetMessage (bitcoin-tracing.md 4.2), for unit tests of the
# native Cap'n Proto reader; the bridge itself loads schemas/.
@0xd6a1f5c3b2e4a790;

struct NetMessage {
  inbound @0 :Bool;
  peerId @1 :Int64;
  peerAddr @2 :Text;
  connType @3 :Text;
  msgType @4 :Text;
  msgSize @5 :UInt64;
  payload @6 :Data;
  timestampUs @7 :Int64;
}

struct Batch {
  messages @0 :List(NetMessage);
}
