"""Generated files cannot drift from the catalogue.

The committed BPF headers and Avro schemas must equal what ``bridge/events/catalog.py``
generates right now, and changing any fact in the catalogue must change the generated
text (so a stale committed file is always detectable).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest

from bridge.events import avro_schema, bpf_header, catalog, codegen
from bridge.events.avro_schema import STABILITY_PROPERTY, event_schema
from bridge.events.bpf_header import events_header, probes_header
from bridge.events.catalog import ALL_EVENTS, BY_NAME, EVENTS, IPC_EVENTS
from bridge.events.spec import EventSpec, FieldSpec, Kind, Stability
from bridge.resources import avro_dir, bpf_dir, current_schema_files

# The envelope's wire order, written out here (README / envelope.py docstring), not
# imported, so reordering the envelope in one place only is caught.
ENVELOPE_FIELDS = [
    "node_id",
    "source",
    "session_id",
    "stream",
    "seq",
    "ts_mono_ns",
    "ts_wall_ns",
    "lost_before",
    "lost",
]
LOSS_FIELDS = ["kernel", "bridge", "producer", "node"]

EVENTS_HEADER = "bpf/include/tracebridge_events.gen.h"
PROBES_HEADER = "bpf/include/tracebridge_probes.gen.h"


def committed_schemas_by_path() -> dict[str, dict[str, Any]]:
    root = avro_dir()
    return {
        str(path.relative_to(root)): json.loads(path.read_text())
        for path in current_schema_files(root)
    }


def committed_event_schemas() -> dict[str, tuple[str, dict[str, Any]]]:
    """Tracepoint name -> (path under avro/, schema), found by the schema's own property."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for path, schema in committed_schemas_by_path().items():
        tracepoint = schema.get("tracebridge.tracepoint")
        if tracepoint is not None:
            assert tracepoint not in out, f"{tracepoint} has two schema files"
            out[tracepoint] = (path, schema)
    return out


# ------------------------------------------------------------------ committed files


def test_no_generated_file_is_stale() -> None:
    assert codegen.stale_files() == []


def test_no_orphan_schema_files() -> None:
    assert codegen.orphan_schemas() == []


def test_generated_files_cover_both_headers_and_every_schema() -> None:
    repo = avro_dir().parent
    paths = {str(g.path.relative_to(repo)) for g in codegen.generated_files()}
    assert EVENTS_HEADER in paths
    assert PROBES_HEADER in paths
    schema_paths = {p for p in paths if p.startswith("avro/")}
    assert len(schema_paths) == len(ALL_EVENTS) + 2  # + Heartbeat and DeadLetter
    assert "avro/bridge/Heartbeat.avsc" in schema_paths
    assert "avro/bridge/DeadLetter.avsc" in schema_paths


def test_every_committed_avsc_parses() -> None:
    schemas = committed_schemas_by_path()
    assert len(schemas) == len(ALL_EVENTS) + 2
    for path, schema in schemas.items():
        # A fresh named-type table per file: each schema must be self-contained
        # (single-object fingerprints cover one complete schema).
        parsed = fastavro.parse_schema(schema, named_schemas={})
        assert isinstance(parsed, dict), path
        assert parsed["type"] == "record", path


def test_every_tracepoint_has_exactly_one_committed_schema() -> None:
    by_tracepoint = committed_event_schemas()
    assert set(by_tracepoint) == set(BY_NAME)


@pytest.mark.parametrize("spec", EVENTS, ids=lambda s: s.name)
def test_event_schema_carries_stability_and_envelope_first(spec: EventSpec) -> None:
    path, schema = committed_event_schemas()[spec.name]
    assert path.split("/")[0] == spec.subsystem
    assert schema["namespace"] == f"tracebridge.{spec.subsystem}"
    assert schema[STABILITY_PROPERTY] == spec.stability.value
    assert schema[STABILITY_PROPERTY] in {s.value for s in Stability}
    first = schema["fields"][0]
    assert first["name"] == "envelope"
    envelope = first["type"]
    assert isinstance(envelope, dict), "the envelope must be inlined in every schema"
    assert (envelope["namespace"], envelope["name"]) == ("tracebridge", "Envelope")
    assert [f["name"] for f in envelope["fields"]] == ENVELOPE_FIELDS
    lost = next(f for f in envelope["fields"] if f["name"] == "lost")["type"]
    assert [f["name"] for f in lost["fields"]] == LOSS_FIELDS
    assert all(f["type"] == "long" for f in lost["fields"])
    # Nothing else in the record is called envelope.
    assert [f["name"] for f in schema["fields"]].count("envelope") == 1


def test_envelope_is_identical_in_every_event_schema() -> None:
    envelopes = {
        json.dumps(schema["fields"][0], sort_keys=True)
        for _, schema in committed_event_schemas().values()
    }
    assert len(envelopes) == 1


def test_bridge_schemas_are_stable() -> None:
    schemas = committed_schemas_by_path()
    assert schemas["bridge/Heartbeat.avsc"][STABILITY_PROPERTY] == "stable"
    assert schemas["bridge/DeadLetter.avsc"][STABILITY_PROPERTY] == "stable"


def test_field_mapping_of_a_message_event() -> None:
    """Hash/enum/payload companions, written out for the richest event."""
    _, schema = committed_event_schemas()["net:inbound_message"]
    names = [f["name"] for f in schema["fields"]]
    assert names == [
        "envelope",
        "peer_id",
        "peer_addr",
        "conn_type",
        "conn_type_raw",
        "msg_type",
        "msg_size",
        "msg",
        "msg_truncated",
    ]
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types["peer_id"] == "long"
    assert types["peer_addr"] == "string"
    assert types["msg_size"] == "long"
    assert types["msg"] == "bytes"
    assert types["msg_truncated"] == "boolean"
    assert types["conn_type_raw"] == ["null", "string"]
    conn = types["conn_type"]
    assert conn["type"] == "enum"
    assert conn["symbols"][0] == "UNKNOWN"
    assert conn["default"] == "UNKNOWN"


def test_field_mapping_of_replaced_reuses_the_hash_type() -> None:
    _, schema = committed_event_schemas()["mempool:replaced"]
    types = {f["name"]: f["type"] for f in schema["fields"]}
    first = types["replaced_txid"]
    assert first == {"type": "fixed", "name": "Hash32", "namespace": "tracebridge", "size": 32}
    assert types["replacement_id"] == "tracebridge.Hash32"  # defined once, then referenced
    assert types["replaced_txid_hex"] == "string"
    assert types["replacement_id_hex"] == "string"
    assert types["replaced_vsize"] == "int"
    assert types["replaced_fee"] == "long"
    assert types["replaced_by_transaction"] == "boolean"


# ------------------------------------------------------------------ cannot drift


def _swap_event(monkeypatch: pytest.MonkeyPatch, new: EventSpec) -> set[str]:
    """Regenerate in memory with ``new`` replacing its catalogue entry; return the
    committed files that would now be stale, relative to the repository."""
    events = tuple(new if spec.name == new.name else spec for spec in EVENTS)
    assert events != EVENTS
    monkeypatch.setattr(bpf_header, "EVENTS", events)
    monkeypatch.setattr(avro_schema, "ALL_EVENTS", (*events, *IPC_EVENTS))
    repo = avro_dir().parent
    return {str(path.relative_to(repo)) for path in codegen.stale_files()}


def _struct_text(header: str, struct_name: str) -> str:
    start = header.index(f"struct {struct_name} {{")
    return header[start : header.index("};", start)]


def _replace_field(spec: EventSpec, name: str, **changes: Any) -> EventSpec:
    fields = tuple(dataclasses.replace(f, **changes) if f.name == name else f for f in spec.fields)
    return dataclasses.replace(spec, fields=fields)


def test_changing_a_string_bound_changes_header_and_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = BY_NAME["mempool:rejected"]
    changed = _replace_field(spec, "reason", max_len=119)
    assert "char reason[119];" in events_header()
    assert _swap_event(monkeypatch, changed) == {EVENTS_HEADER, "avro/mempool/Rejected.avsc"}
    assert "char reason[120];" in bpf_header.events_header()
    assert event_schema(changed) != event_schema(spec)


def test_changing_a_field_kind_changes_header_and_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = BY_NAME["mempool:added"]
    changed = _replace_field(spec, "vsize", kind=Kind.I64)
    assert _swap_event(monkeypatch, changed) == {EVENTS_HEADER, "avro/mempool/Added.avsc"}
    struct = _struct_text(bpf_header.events_header(), "tb_rec_mempool_added")
    assert "__s64 vsize;" in struct
    assert "__s32 vsize;" not in struct
    committed = (bpf_dir() / "include" / "tracebridge_events.gen.h").read_text()
    assert "__s32 vsize;" in _struct_text(committed, "tb_rec_mempool_added")
    vsize = next(f for f in event_schema(changed)["fields"] if f["name"] == "vsize")
    assert vsize["type"] == "long"


def test_reordering_arguments_changes_all_three(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument order is the USDT argument number: the BPF reads must follow it."""
    spec = BY_NAME["mempool:added"]
    txid, vsize, fee = spec.fields
    changed = dataclasses.replace(spec, fields=(txid, fee, vsize))
    assert _swap_event(monkeypatch, changed) == {
        EVENTS_HEADER,
        PROBES_HEADER,
        "avro/mempool/Added.avsc",
    }
    probes = bpf_header.probes_header()
    assert "_bpf_readarg_tb_probe_mempool_added_2(ctx, &e->fee, sizeof(e->fee));" in probes


def test_changing_stability_changes_only_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = BY_NAME["mempool:added"]
    changed = dataclasses.replace(spec, stability=Stability.EXPERIMENTAL)
    assert _swap_event(monkeypatch, changed) == {"avro/mempool/Added.avsc"}


def test_adding_an_enum_value_changes_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = BY_NAME["utxocache:flush"]
    mode = spec.field_named("mode")
    assert mode.enum is not None
    enum = dataclasses.replace(mode.enum, values=(*mode.enum.values, (5, "NEW_MODE")))
    changed = _replace_field(spec, "mode", enum=enum)
    assert _swap_event(monkeypatch, changed) == {"avro/utxocache/Flush.avsc"}


def test_adding_an_event_makes_everything_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    new = EventSpec(
        tp_id=99,
        subsystem="mempool",
        event="brand_new",
        stability=Stability.PROPOSED,
        doc="Test only.",
        fields=(FieldSpec("txid", Kind.HASH32, "Txid."),),
    )
    monkeypatch.setattr(bpf_header, "EVENTS", (*EVENTS, new))
    monkeypatch.setattr(avro_schema, "ALL_EVENTS", (*ALL_EVENTS, new))
    repo = avro_dir().parent
    stale = {str(p.relative_to(repo)) for p in codegen.stale_files()}
    assert stale == {EVENTS_HEADER, PROBES_HEADER, "avro/mempool/BrandNew.avsc"}
    assert "#define TB_TP_MEMPOOL_BRAND_NEW 99" in bpf_header.events_header()
    assert "#ifdef TB_ENABLE_MEMPOOL_BRAND_NEW" in bpf_header.probes_header()


def test_generation_is_deterministic() -> None:
    assert events_header() == events_header()
    assert probes_header() == probes_header()
    first = [(g.path, g.content) for g in codegen.generated_files()]
    assert first == [(g.path, g.content) for g in codegen.generated_files()]


# ------------------------------------------------------------------ write / check


@pytest.fixture
def scratch_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point codegen at an empty copy of the repository layout."""
    (tmp_path / "bpf").mkdir()
    (tmp_path / "avro").mkdir()
    (tmp_path / "deploy").mkdir()
    shutil.copy(avro_dir().parent / "README.md", tmp_path / "README.md")  # the template
    monkeypatch.setattr(codegen, "bpf_dir", lambda: tmp_path / "bpf")
    monkeypatch.setattr(codegen, "avro_dir", lambda: tmp_path / "avro")
    monkeypatch.setattr(codegen, "docs_root", lambda: tmp_path)
    return tmp_path


def test_write_all_then_check(scratch_tree: Path) -> None:
    written = codegen.write_all()
    # Every schema, both headers and the example config; the copied README is current.
    assert len(written) == len(ALL_EVENTS) + 2 + 2 + 1
    assert codegen.stale_files() == []
    assert codegen.write_all() == []  # nothing changed the second time
    # The files written are byte-identical to the committed ones.
    committed = bpf_dir() / "include" / "tracebridge_events.gen.h"
    assert (scratch_tree / "bpf/include/tracebridge_events.gen.h").read_text() == (
        committed.read_text()
    )
    assert (scratch_tree / "avro/mempool/Added.avsc").read_text() == (
        avro_dir() / "mempool/Added.avsc"
    ).read_text()


def test_edited_missing_and_orphan_files_are_reported(scratch_tree: Path) -> None:
    codegen.write_all()
    edited = scratch_tree / "avro/mempool/Added.avsc"
    edited.write_text(edited.read_text().replace('"int"', '"long"', 1))
    missing = scratch_tree / "bpf/include/tracebridge_probes.gen.h"
    missing.unlink()
    orphan = scratch_tree / "avro/mempool/Gone.avsc"
    shutil.copy(scratch_tree / "avro/mempool/Rejected.avsc", orphan)
    assert set(codegen.stale_files()) == {edited, missing}
    assert codegen.orphan_schemas() == [orphan]
    assert set(codegen.write_all()) == {edited, missing}
    assert codegen.stale_files() == []
    assert codegen.orphan_schemas() == [orphan]  # write_all never deletes


def test_catalogue_module_is_what_codegen_reads() -> None:
    """Guard for the monkeypatching above: generators read the catalogue's EVENTS."""
    assert getattr(bpf_header, "EVENTS") is catalog.EVENTS  # noqa: B009 (not re-exported)
    assert getattr(avro_schema, "ALL_EVENTS") is catalog.ALL_EVENTS  # noqa: B009
