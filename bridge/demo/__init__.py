"""``tracebridge demo``: emulated nodes, the real bridge and Kafka, watched live.

The demo is for a person at a terminal, so everything here is built to stay out of the
bridge's way: the bridge runs unchanged in a background thread (two, with both sources
side by side), the view only reads snapshots that the bridges and a consumer publish,
and a failure in the view or the consumer is logged and shown, never propagated into
the pipeline it is watching.

Modules, one job each:

- ``plan``: what was asked for (which sources, the rate, the node ids);
- ``pipeline``: reach the broker, start the legs and the consumer; stop them in the
  order that makes the final books exact;
- ``leg``: one source's pipeline (an emulated node, its bridge, its books), the same
  sequence whatever the source;
- ``usdt_leg``, ``ipc_leg``: the emulated node of each source and how a bridge reads it;
- ``runner``: one unchanged bridge in a background thread, watched via its status file;
- ``books``: hold a bridge's latest ledger (per heartbeat) and sum it per subsystem;
- ``lag``: a consumer that reads the topics back, decodes every record and measures lag;
- ``logtail``: keep log lines off the terminal while the live view owns it;
- ``signals``: Ctrl-C in stages (stop cleanly, then hurry, then give up);
- ``table``: aligned text tables, optionally coloured;
- ``view``: render one frame of the live view, or one plain line for logs and pipes;
- ``screen``: put frames on the terminal in place (or plain lines), never failing;
- ``summary``: the USDT leg's final per-stream table and verdict;
- ``ipc_summary``: the IPC leg's: its books, and the node's counts per its own streams;
- ``report``: everything printed after the view, per source and side by side.
"""
