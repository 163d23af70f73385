/* Shared declarations of the native hot path (bridge.codec._native).
 *
 * Two tables drive everything, both filled from Python out of the catalogue:
 *   sequences[id]    what a seq counts: its name (the envelope's `stream`) and its
 *                    counters (captured, last seq, losses by stage, pending losses to
 *                    report in the next record's lost_before);
 *   types[tp_id]     one Avro record type: its framing bytes, its fields in Avro order,
 *                    and (for USDT) its ring layout; each belongs to one sequence.
 * For USDT both are indexed by the tracepoint's tp_id. Over IPC the two NetMessage
 * record types share one sequence, because the node's `dropped` count is not split
 * by direction.
 *
 * Every input path (ring record, Python values, Cap'n Proto list) extracts a Value per
 * field and calls encode_record(), so there is one Avro writer.
 */
#ifndef TRACEBRIDGE_NATIVE_H
#define TRACEBRIDGE_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_IDS 256
#define MAX_FIELDS 32
#define N_STAGES 4
enum stage { STAGE_KERNEL = 0, STAGE_BRIDGE, STAGE_PRODUCER, STAGE_NODE };

/* Field kinds, as bridge/codec/native.py NATIVE_KIND numbers them. */
enum kind { K_I32 = 0, K_U32, K_I64, K_U64, K_BOOL, K_HASH32, K_CSTR, K_PAYLOAD };

typedef struct {
    int kind;
    uint32_t offset;     /* ring layout: where the slot is (USDT record types) */
    uint32_t size;       /* ring layout: storage size */
    int hex;             /* HASH32: also write the display hex string */
    int length_index;    /* PAYLOAD: index (in fields) of the full-size argument */
    Py_ssize_t n_enum;   /* 0: not an enum */
    int64_t *enum_ints;  /* integer enum values in symbol order (symbol index - 1) */
    char **enum_strs;    /* string enum values in symbol order */
    int address;         /* a peer address: redacted when the encoder's Redaction is on */
    int type_index;      /* PAYLOAD: index of the message type field (-1: none); some
                          * types' payloads carry addresses and are withheld (Redaction) */
    char name[64];
} Field;

typedef struct {
    int configured;
    char *name;
    Py_ssize_t name_len;
    uint64_t captured, last_seq, dead_lettered, pending;
    uint64_t lost[N_STAGES];
} Sequence;

typedef struct {
    int configured;
    int sequence;
    unsigned char framing[16]; /* single-object (C3 01 + fingerprint) or registry (00 + id) */
    Py_ssize_t framing_len;
    uint32_t fixed_size;       /* ring layout; 0 for types that never come from a ring */
    int has_payload;
    Field *fields;
    Py_ssize_t n_fields;
    unsigned char *prefix;     /* framing + node_id + source + session_id + stream name */
    Py_ssize_t prefix_len;
} RecordType;

/* ---- redaction (redact.c): privacy.peer_addr ---- */
enum redact_mode { REDACT_NONE = 0, REDACT_HASH, REDACT_TRUNCATE };
#define MAX_WITHHELD_TYPES 8
#define REDACTED_MAX 128 /* longest redacted address written (hash or prefix, and a port) */

typedef struct {
    uint32_t h[8];
    uint64_t total;
    unsigned char buf[64];
    size_t used;
} Sha256;

/* A node talks to a few hundred peers, each sending many messages: recent results,
 * 4-way set-associative on a hash of the address (a direct-mapped table thrashed on
 * colliding peers), spare most records the HMAC. */
#define REDACT_CACHE_SETS 256
#define REDACT_CACHE_WAYS 4
#define REDACT_CACHE_KEY_MAX 72 /* longer addresses (IPC text) are not cached */
#define REDACT_CACHE_OUT_MAX 64 /* every redacted form fits (longest: ~52) */

typedef struct {
    uint8_t in_len, out_len; /* in_len 0: empty slot (an empty address is not cached) */
    unsigned char in[REDACT_CACHE_KEY_MAX];
    char out[REDACT_CACHE_OUT_MAX];
} RedactCacheEntry;

typedef struct {
    RedactCacheEntry way[REDACT_CACHE_WAYS];
    uint8_t next; /* the way a miss replaces (round robin) */
} RedactCacheSet;

typedef struct {
    int mode;
    int keep_port;
    int v4_bits, v6_bits;
    Sha256 inner, outer; /* HMAC-SHA256 after the key's ipad / opad block */
    int n_types;
    char *types[MAX_WITHHELD_TYPES]; /* message types whose payload is withheld */
    RedactCacheSet cache[REDACT_CACHE_SETS];
} Redaction;

typedef struct {
    PyObject_HEAD
    Sequence sequences[MAX_IDS];
    RecordType types[MAX_IDS];
    unsigned char *session_enc; /* node_id, source, session_id: Avro-encoded */
    Py_ssize_t session_len;
    int64_t wall_offset_ns;
    unsigned char *out;
    size_t out_cap;
    struct CapnpList *lists[MAX_IDS]; /* Cap'n Proto list readers (capnp.c) */
    Redaction redaction;
} Encoder;

/* One field's value, whatever the input path. Integers are sign- or zero-extended into
 * i; hashes, strings and payloads point at their bytes (valid until the record is
 * written). */
typedef struct {
    int64_t i;
    const unsigned char *p;
    size_t len;
} Value;

/* Result of encoding one record: a value in enc->out, or a rejection. */
typedef struct {
    int ok;
    int tp_id;       /* -1 when unknown */
    int64_t seq;     /* -1 when unknown */
    char reason[160];
    size_t len;
    int64_t ts_ms;
} Result;

/* ---- Avro primitives (inline: the hot loop) ---- */
static inline size_t put_long(unsigned char *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (z >= 0x80) {
        p[n++] = (unsigned char)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (unsigned char)z;
    return n;
}

static inline size_t put_bytes(unsigned char *p, const void *data, size_t len)
{
    size_t n = put_long(p, (int64_t)len);
    if (len) memcpy(p + n, data, len);
    return n + len;
}

/* Every record's envelope holds the session: encoding before set_session() would write
 * records no consumer can decode, with counters that set_session() then resets. */
static inline int has_session(const Encoder *enc)
{
    if (enc->session_len) return 1;
    PyErr_SetString(PyExc_RuntimeError, "no session: call set_session() before encoding");
    return 0;
}

static inline uint64_t rd_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t rd_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t rd_u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* ---- encode.c ---- */
void reject(Result *r, const char *fmt, ...);
int valid_utf8(const unsigned char *s, size_t n);
size_t trim_partial_utf8(const unsigned char *s, size_t n);
/* Validate values (UTF-8 of strings) before anything is counted or written. */
int check_values(const RecordType *t, const Value *values, Result *r);
/* Write framing + envelope + fields into enc->out; r->len and r->ts_ms are set. */
int write_record(Encoder *enc, const RecordType *t, int64_t seq, uint64_t mono_ns,
                 uint64_t lost_before, const Value *values, Result *r);
/* Bookkeeping for sources where the bridge numbers events (IPC): the next record of
 * the sequence, after `node_lost` events the node reports it dropped before it. */
int encode_next(Encoder *enc, int tp_id, uint64_t mono_ns, uint64_t node_lost,
                const Value *values, Result *r);
void skip_lost(Sequence *s, uint64_t count, int stage);
int ensure_out(Encoder *enc, size_t need);
size_t worst_case(const RecordType *t, const Value *values);

/* ---- redact.c ---- */
void redaction_set_key(Redaction *red, const unsigned char *key, size_t len);
/* Write the redacted form of address a into o (at least REDACTED_MAX bytes). */
size_t redact_address(Redaction *red, const unsigned char *a, size_t len, char *o);
int payload_withheld(const Redaction *red, const Value *type);

/* ---- ring.c ---- */
int process_ring_record(Encoder *enc, const unsigned char *rec, size_t len, Result *r);

/* ---- capnp.c ---- */
struct CapnpList;
void capnp_list_free(struct CapnpList *list);
PyObject *capnp_configure(Encoder *enc, PyObject *args);
PyObject *capnp_encode(Encoder *enc, PyObject *args);

/* ---- _native.c ---- */
int emit(Encoder *enc, const Result *r, const unsigned char *raw, size_t raw_len,
         PyObject *good, PyObject *dead);

#endif
