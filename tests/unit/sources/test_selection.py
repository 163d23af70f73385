"""Which tracepoints to attach: patterns over the catalogue, then what the binary has."""

from __future__ import annotations

import pytest

from bridge.errors import ConfigError
from bridge.events.catalog import BY_NAME, EVENTS
from bridge.sources.usdt.selection import select_events, split_by_presence

MEMPOOL = ["mempool:added", "mempool:removed", "mempool:replaced", "mempool:rejected"]
COIN_SELECTION = [
    "coin_selection:selected_coins",
    "coin_selection:normal_create_tx_internal",
    "coin_selection:attempting_aps_create_tx",
    "coin_selection:aps_create_tx_internal",
]


def names(patterns: list[str]) -> list[str]:
    return [spec.name for spec in select_events(patterns)]


def test_star_selects_everything_in_tp_id_order() -> None:
    selected = select_events(["*"])
    assert len(selected) == 20
    assert [spec.tp_id for spec in selected] == sorted(spec.tp_id for spec in EVENTS)


def test_subsystem_names() -> None:
    assert names(["mempool"]) == MEMPOOL
    assert names(["coin_selection"]) == COIN_SELECTION
    assert names(["validation"]) == ["validation:block_connected"]
    assert len(names(["net"])) == 7
    assert len(names(["utxocache"])) == 4


def test_globs() -> None:
    assert names(["net:*_message"]) == ["net:inbound_message", "net:outbound_message"]
    assert names(["*:*_connection"]) == [
        "net:inbound_connection",
        "net:outbound_connection",
        "net:evicted_inbound_connection",
        "net:misbehaving_connection",
        "net:closed_connection",
    ]
    assert names(["utxocache:[as]*"]) == ["utxocache:add", "utxocache:spent"]
    assert names(["mempool:re?ected"]) == ["mempool:rejected"]
    assert names(["mempool:added"]) == ["mempool:added"]


def test_union_without_duplicates_in_tp_id_order() -> None:
    selected = names(["mempool:rejected", "validation", "mempool", "mempool:added"])
    assert selected == ["validation:block_connected", *MEMPOOL]


def test_no_patterns_select_nothing() -> None:
    assert select_events([]) == []


@pytest.mark.parametrize(
    "pattern",
    ["bogus", "mempool:bogus", "Mempool", "MEMPOOL:*", "wallet", "net:inbound", "mempool:"],
)
def test_pattern_matching_nothing_is_a_config_error(pattern: str) -> None:
    with pytest.raises(ConfigError) as caught:
        select_events(["mempool", pattern])
    message = str(caught.value)
    assert message.startswith("usdt.tracepoints:")
    assert repr(pattern) in message


def test_split_by_presence() -> None:
    selected = select_events(["mempool", "coin_selection"])
    probes = {"mempool:added", "mempool:replaced", "net:inbound_message", "other:thing"}
    available = split_by_presence(selected, probes)
    assert [spec.name for spec in available.present] == ["mempool:added", "mempool:replaced"]
    assert [spec.name for spec in available.missing] == [
        "mempool:removed",
        "mempool:rejected",
        *COIN_SELECTION,
    ]


def test_split_by_presence_edge_cases() -> None:
    everything = select_events(["*"])
    all_present = split_by_presence(everything, {spec.name for spec in EVENTS})
    assert all_present.present == tuple(everything)
    assert all_present.missing == ()
    none_present = split_by_presence(everything, set())
    assert none_present.present == ()
    assert none_present.missing == tuple(everything)
    # Probe names are "provider:name"; a bare event name is not a match.
    assert split_by_presence([BY_NAME["mempool:added"]], {"added"}).present == ()
