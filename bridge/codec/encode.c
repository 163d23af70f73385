/* The one Avro writer: framing + envelope + fields, from extracted Values.
 *
 * The envelope is written in the order of bridge/events/envelope.py: node_id, source,
 * session_id, stream (all in the record type's precomputed prefix), then seq,
 * ts_mono_ns, ts_wall_ns, lost_before and the four running loss totals. Field
 * encodings follow bridge/events/avro_schema.py; tests/unit/codec requires the output
 * to be byte-identical to fastavro's for the committed schemas.
 */
#include <stdarg.h>
#include <stdio.h>

#include "native.h"

static const char HEX[] = "0123456789abcdef";

void reject(Result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    r->ok = 0;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as Python's decoder. */
int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            need = 1;
            cp = c & 0x1F;
            if (c < 0xC2) return 0;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3;
            cp = c & 0x07;
            if (c > 0xF4) return 0;
        } else {
            return 0;
        }
        if (i + need >= n) return 0; /* sequence runs past the end */
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        i += need + 1;
    }
    return 1;
}

/* A string read up to its bound may end inside a multi-byte character: that is
 * truncation, not corruption, so drop the incomplete trailing sequence (only). */
size_t trim_partial_utf8(const unsigned char *s, size_t n)
{
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: keep looking for the lead */
        if (c >= 0xC0) {
            size_t need = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            if (need > back) return n - back;
        }
        return n;
    }
    return n;
}

int ensure_out(Encoder *enc, size_t need)
{
    if (need <= enc->out_cap) return 0;
    size_t cap = enc->out_cap ? enc->out_cap : 4096;
    while (cap < need) cap *= 2;
    unsigned char *p = PyMem_Realloc(enc->out, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    enc->out = p;
    enc->out_cap = cap;
    return 0;
}

/* Upper bound of one record's encoding (prefix, envelope longs, each field). */
size_t worst_case(const RecordType *t, const Value *values)
{
    size_t n = (size_t)t->prefix_len + 10 * (4 + N_STAGES);
    for (Py_ssize_t i = 0; i < t->n_fields; i++) {
        const Field *f = &t->fields[i];
        n += 12 + values[i].len + (f->kind == K_HASH32 ? 34 + 66 : 0) +
             (f->n_enum ? values[i].len + 12 : 0) + (f->address ? REDACTED_MAX : 0);
    }
    return n;
}

int check_values(const RecordType *t, const Value *values, Result *r)
{
    for (Py_ssize_t i = 0; i < t->n_fields; i++) {
        const Field *f = &t->fields[i];
        if (f->kind == K_CSTR && !valid_utf8(values[i].p, values[i].len)) {
            reject(r, "field %s: not valid UTF-8", f->name);
            return 0;
        }
        if (f->kind == K_HASH32 && values[i].len != 32) {
            reject(r, "field %s: %zu bytes, a hash has 32", f->name, values[i].len);
            return 0;
        }
    }
    return 1;
}

static size_t write_enum_int(unsigned char *o, const Field *f, int64_t raw)
{
    Py_ssize_t idx = 0;
    for (Py_ssize_t e = 0; e < f->n_enum; e++)
        if (f->enum_ints[e] == raw) {
            idx = e + 1;
            break;
        }
    size_t n = put_long(o, idx);
    if (idx) {
        o[n++] = 0; /* <name>_raw: union branch 0, null */
    } else {
        o[n++] = 2; /* union branch 1: the long */
        n += put_long(o + n, raw);
    }
    return n;
}

static size_t write_enum_str(unsigned char *o, const Field *f, const Value *v)
{
    Py_ssize_t idx = 0;
    for (Py_ssize_t e = 0; e < f->n_enum; e++)
        if (strlen(f->enum_strs[e]) == v->len && memcmp(f->enum_strs[e], v->p, v->len) == 0) {
            idx = e + 1;
            break;
        }
    size_t n = put_long(o, idx);
    if (idx) {
        o[n++] = 0;
    } else {
        o[n++] = 2;
        n += put_bytes(o + n, v->p, v->len);
    }
    return n;
}

static size_t write_field(unsigned char *o, const Field *f, const Value *values, Py_ssize_t i)
{
    const Value *v = &values[i];
    size_t n = 0;
    switch (f->kind) {
    case K_I32:
    case K_U32:
        if (f->n_enum) return write_enum_int(o, f, v->i);
        return put_long(o, v->i);
    case K_I64:
    case K_U64:
        return put_long(o, v->i);
    case K_BOOL:
        o[0] = v->i ? 1 : 0;
        return 1;
    case K_HASH32:
        memcpy(o, v->p, 32);
        n = 32;
        if (f->hex) {
            o[n++] = 0x80; /* varint of zigzag(64) = 128 */
            o[n++] = 0x01;
            for (int b = 31; b >= 0; b--) {
                o[n++] = (unsigned char)HEX[v->p[b] >> 4];
                o[n++] = (unsigned char)HEX[v->p[b] & 15];
            }
        }
        return n;
    case K_CSTR:
        if (f->n_enum) return write_enum_str(o, f, v);
        return put_bytes(o, v->p, v->len);
    case K_PAYLOAD:
        n = put_bytes(o, v->p, v->len);
        o[n++] = (uint64_t)values[f->length_index].i > (uint64_t)v->len ? 1 : 0;
        return n;
    }
    return 0;
}

int write_record(Encoder *enc, const RecordType *t, int64_t seq, uint64_t mono_ns,
                 uint64_t lost_before, const Value *values, Result *r)
{
    if (ensure_out(enc, worst_case(t, values)) < 0) return -1;
    const Sequence *s = &enc->sequences[t->sequence];
    unsigned char *o = enc->out;
    size_t n = (size_t)t->prefix_len;
    memcpy(o, t->prefix, n);
    /* u64 values are written with the same bits as Avro longs; the wall offset is added
     * in unsigned arithmetic so a corrupt timestamp cannot be C UB. */
    uint64_t wall = mono_ns + (uint64_t)enc->wall_offset_ns;
    n += put_long(o + n, seq);
    n += put_long(o + n, (int64_t)mono_ns);
    n += put_long(o + n, (int64_t)wall);
    n += put_long(o + n, (int64_t)lost_before);
    for (int k = 0; k < N_STAGES; k++) n += put_long(o + n, (int64_t)s->lost[k]);
    Redaction *red = &enc->redaction;
    for (Py_ssize_t i = 0; i < t->n_fields; i++) {
        const Field *f = &t->fields[i];
        if (red->mode && f->address) {
            char redacted[REDACTED_MAX];
            n += put_bytes(o + n, redacted, redact_address(red, values[i].p, values[i].len, redacted));
        } else if (red->mode && f->type_index >= 0 && payload_withheld(red, &values[f->type_index])) {
            o[n++] = 0; /* no bytes; msg_truncated says there were some */
            o[n++] = values[f->length_index].i != 0 ? 1 : 0;
        } else {
            n += write_field(o + n, f, values, i);
        }
    }
    r->len = n;
    r->ts_ms = (int64_t)wall / 1000000;
    return 0;
}

void skip_lost(Sequence *s, uint64_t count, int stage)
{
    s->last_seq += count;
    s->lost[stage] += count;
    s->pending += count;
}

int encode_next(Encoder *enc, int tp_id, uint64_t mono_ns, uint64_t node_lost,
                const Value *values, Result *r)
{
    const RecordType *t = &enc->types[tp_id];
    Sequence *s = &enc->sequences[t->sequence];
    r->ok = 1;
    r->tp_id = tp_id;
    skip_lost(s, node_lost, STAGE_NODE);
    uint64_t seq = ++s->last_seq;
    r->seq = (int64_t)seq;
    s->captured++;
    if (!check_values(t, values, r)) {
        s->dead_lettered++;
        s->lost[STAGE_BRIDGE]++;
        s->pending++;
        return 0;
    }
    uint64_t lost_before = s->pending;
    s->pending = 0;
    return write_record(enc, t, (int64_t)seq, mono_ns, lost_before, values, r);
}
