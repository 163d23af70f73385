"""``tracebridge demo``: an emulated node, the real bridge and Kafka, watched live.

The demo is for a person at a terminal, so everything here is built to stay out of the
bridge's way: the bridge runs unchanged in a background thread, the view only reads
snapshots that the bridge and a consumer publish, and a failure in the view or the
consumer is logged and shown, never propagated into the pipeline it is watching.

Modules, one job each:

- ``pipeline``: start the broker, the emulated node and the bridge; stop them in the
  order that makes the final books exact;
- ``books``: hold the bridge's latest ledger (per heartbeat) and sum it per subsystem;
- ``lag``: a consumer that reads the topics back, decodes every record and measures lag;
- ``logtail``: keep log lines off the terminal while the live view owns it;
- ``signals``: Ctrl-C in stages (stop cleanly, then hurry, then give up);
- ``table``: aligned text tables, optionally coloured;
- ``view``: render one frame of the live view, or one plain line for logs and pipes;
- ``summary``: the final per-stream table and the verdict that sets the exit code.
"""
