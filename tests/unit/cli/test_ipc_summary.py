"""The IPC demo's verdict: the bridge's books against the emulated node's own counts."""

from __future__ import annotations

from bridge.demo.ipc_summary import NodeStreamCheck


def check(bridge_fired: int, interrupted: int = 0) -> NodeStreamCheck:
    return NodeStreamCheck(
        node_stream="utxo",
        sent=100,
        dropped=5,
        not_sent=0,
        bridge_fired=bridge_fired,
        bridge_streams=("utxocache:add",),
        interrupted=interrupted,
    )


def test_the_bridge_must_count_what_the_node_sent_and_dropped() -> None:
    assert check(105).balanced
    assert not check(104).balanced
    assert not check(106).balanced


def test_a_call_cut_off_by_shutdown_may_or_may_not_have_arrived() -> None:
    assert check(105, interrupted=1).balanced
    assert check(106, interrupted=1).balanced
    assert not check(107, interrupted=1).balanced
    assert not check(104, interrupted=1).balanced


def test_no_report_from_the_node_is_never_balanced() -> None:
    unknown = NodeStreamCheck("utxo", None, None, None, 0, ())
    assert not unknown.balanced
