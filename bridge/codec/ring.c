/* USDT ring records -> Values -> encode_record.
 *
 * A record is the 32-byte tb_header (seq, ktime, lost_before, tp_id, flags) and the
 * event's fixed layout, then any payload bytes (bpf/include/tracebridge_events.gen.h).
 * Checks run in the order of bridge/events/decoder.py, so a dead letter carries the
 * same reason whichever path rejected the record.
 */
#include "native.h"

#define HEADER_SIZE 32
#define FLAG_READ_ERROR 1u

/* Extract one field; 0 with r->reason set if the bytes cannot be what the layout says. */
static int extract(const RecordType *t, const Field *f, const unsigned char *rec, size_t len,
                   Value *v, Result *r)
{
    const unsigned char *p = rec + f->offset;
    v->p = NULL;
    v->len = 0;
    switch (f->kind) {
    case K_I32: {
        int32_t x;
        memcpy(&x, p, 4);
        v->i = x;
        return 1;
    }
    case K_U32:
        v->i = (int64_t)rd_u32(p);
        return 1;
    case K_I64:
    case K_U64:
        v->i = (int64_t)rd_u64(p);
        return 1;
    case K_BOOL:
        v->i = p[0];
        return 1;
    case K_HASH32:
        v->p = p;
        v->len = 32;
        return 1;
    case K_CSTR: {
        const unsigned char *nul = memchr(p, 0, f->size);
        if (!nul) {
            reject(r, "field %s: string is not NUL-terminated", f->name);
            return 0;
        }
        size_t sl = (size_t)(nul - p);
        if (sl == f->size - 1) sl = trim_partial_utf8(p, sl); /* filled to the bound */
        if (!valid_utf8(p, sl)) {
            reject(r, "field %s: not valid UTF-8", f->name);
            return 0;
        }
        v->p = p;
        v->len = sl;
        return 1;
    }
    case K_PAYLOAD: {
        uint32_t captured = rd_u32(p);
        if ((size_t)captured != len - t->fixed_size) {
            reject(r, "field %s: %u bytes captured but %zu present", f->name, captured,
                   len - t->fixed_size);
            return 0;
        }
        v->p = rec + t->fixed_size;
        v->len = captured;
        return 1;
    }
    }
    return 1;
}

static int extract_all(const RecordType *t, const Sequence *s, const unsigned char *rec,
                       size_t len, Value *values, Result *r)
{
    if (len < t->fixed_size) {
        reject(r, "record of %zu bytes is shorter than %s's %u", len, s->name, t->fixed_size);
        return 0;
    }
    if (rd_u16(rec + 26) & FLAG_READ_ERROR) {
        reject(r, "a pointer argument could not be read at the probe");
        return 0;
    }
    for (Py_ssize_t i = 0; i < t->n_fields; i++)
        if (!extract(t, &t->fields[i], rec, len, &values[i], r)) return 0;
    if (!t->has_payload && len != t->fixed_size) {
        reject(r, "record of %zu bytes, %s records are %u", len, s->name, t->fixed_size);
        return 0;
    }
    return 1;
}

int process_ring_record(Encoder *enc, const unsigned char *rec, size_t len, Result *r)
{
    r->ok = 1;
    r->tp_id = -1;
    r->seq = -1;
    r->len = 0;
    if (len < HEADER_SIZE) {
        reject(r, "record of %zu bytes is shorter than the header", len);
        return 0;
    }
    int tp = rd_u16(rec + 24);
    uint64_t seq = rd_u64(rec);
    uint64_t kernel_before = rd_u64(rec + 16);
    r->seq = (int64_t)seq;
    if (tp <= 0 || tp >= MAX_IDS || !enc->types[tp].configured || !enc->types[tp].fixed_size) {
        reject(r, "unknown tracepoint id %d", tp);
        return 0;
    }
    r->tp_id = tp;
    const RecordType *t = &enc->types[tp];
    Sequence *s = &enc->sequences[t->sequence];
    s->captured++;
    if (seq > s->last_seq) s->last_seq = seq;
    s->lost[STAGE_KERNEL] += kernel_before;
    Value values[MAX_FIELDS];
    if (!extract_all(t, s, rec, len, values, r)) {
        s->dead_lettered++;
        s->lost[STAGE_BRIDGE] += 1;
        s->pending += kernel_before + 1;
        return 0;
    }
    uint64_t lost_before = kernel_before + s->pending;
    s->pending = 0;
    return write_record(enc, t, (int64_t)seq, rd_u64(rec + 8), lost_before, values, r);
}
