/* Cap'n Proto list of structs -> Values -> encode_record, without a Python object per
 * element.
 *
 * Why: reading a NetMessage's eight fields through pycapnp costs ~3.3 us in Python;
 * copying the batch into a message of our own and serialising it costs ~0.17 us per
 * message (bridge/sources/ipc/batch.py), and this reader takes it from there. It reads
 * the standard serialisation (segment table, then segments), follows near, far and
 * double-far pointers, and checks every offset against its segment: the bytes come
 * from another process and are treated as untrusted.
 *
 * Nothing about NetMessage is written here: bridge/sources/ipc/batch.py configures the
 * field positions from pycapnp's schema introspection (slot offsets and pointer
 * indexes), so the reader follows whatever schema was loaded.
 */
#include "native.h"

#define MAX_SEGMENTS 64

enum capkind { C_NONE = 0, C_BOOL, C_I32, C_U32, C_I64, C_U64, C_TEXT, C_DATA };

typedef struct {
    int kind;
    uint32_t offset; /* bits for C_BOOL, units of the field's size for numbers, pointer index */
} Source;

struct CapnpList {
    int root_pointer;  /* which pointer of the root struct holds the list */
    int selector_bit;  /* bool field choosing the record type; -1: always tp_true */
    int tp_true, tp_false;
    int ts_word;       /* Int64 data word holding the event time; -1: the receipt time */
    int64_t ts_scale;  /* its unit in ns (1000 for microseconds) */
    Py_ssize_t n_sources;
    Source sources[MAX_FIELDS]; /* parallel to the record type's fields */
};

typedef struct {
    const unsigned char *base;
    uint64_t words;
} Segment;

typedef struct {
    Segment segs[MAX_SEGMENTS];
    uint32_t n;
} Message;

typedef struct {
    uint32_t seg;
    uint64_t at;    /* word index of the struct's data section */
    uint32_t data_words;
    uint32_t ptr_words;
} StructRef;

static int parse_message(const unsigned char *buf, size_t len, Message *m)
{
    if (len < 8) return 0;
    uint32_t n = rd_u32(buf) + 1;
    if (n > MAX_SEGMENTS) return 0;
    size_t table = (4 + 4 * (size_t)n + 7) & ~(size_t)7;
    if (table > len) return 0;
    size_t offset = table;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t words = rd_u32(buf + 4 + 4 * (size_t)i);
        if (words > (len - offset) / 8) return 0;
        m->segs[i].base = buf + offset;
        m->segs[i].words = words;
        offset += words * 8;
    }
    m->n = n;
    return 1;
}

static int word_at(const Message *m, uint32_t seg, uint64_t at, uint64_t *out)
{
    if (seg >= m->n || at >= m->segs[seg].words) return 0;
    *out = rd_u64(m->segs[seg].base + at * 8);
    return 1;
}

/* Resolve the pointer stored at (seg, at): give the pointer word describing the target
 * and where the target starts. Returns 0 for out-of-bounds, -1 for null, 1 otherwise. */
static int resolve(const Message *m, uint32_t seg, uint64_t at, uint64_t *ptr, uint32_t *tseg,
                   uint64_t *tat)
{
    uint64_t p;
    if (!word_at(m, seg, at, &p)) return 0;
    if (p == 0) return -1;
    if ((p & 3) == 2) { /* far pointer */
        int twice = (int)((p >> 2) & 1);
        uint64_t pad = (p >> 3) & 0x1FFFFFFF;
        uint32_t pad_seg = (uint32_t)(p >> 32);
        uint64_t landing;
        if (!word_at(m, pad_seg, pad, &landing)) return 0;
        if (!twice) { /* the landing pad is a normal pointer, relative to itself */
            p = landing;
            seg = pad_seg;
            at = pad;
        } else { /* the landing pad points far to the content; the next word is its tag */
            uint64_t tag;
            if ((landing & 3) != 2 || !word_at(m, pad_seg, pad + 1, &tag)) return 0;
            *ptr = tag;
            *tseg = (uint32_t)(landing >> 32);
            *tat = (landing >> 3) & 0x1FFFFFFF;
            return 1;
        }
    }
    int64_t offset = (int64_t)(int32_t)(uint32_t)(p & 0xFFFFFFFF) >> 2;
    int64_t target = (int64_t)at + 1 + offset;
    if (target < 0) return 0;
    *ptr = p;
    *tseg = seg;
    *tat = (uint64_t)target;
    return 1;
}

static int struct_at(const Message *m, uint32_t seg, uint64_t at, StructRef *s)
{
    uint64_t p;
    int rc = resolve(m, seg, at, &p, &s->seg, &s->at);
    if (rc <= 0 || (p & 3) != 0) return 0;
    s->data_words = (uint32_t)((p >> 32) & 0xFFFF);
    s->ptr_words = (uint32_t)(p >> 48);
    return s->seg < m->n && s->at + s->data_words + s->ptr_words <= m->segs[s->seg].words;
}

/* Text or Data at pointer index `index` of struct `s`: bytes and length (Text without
 * its NUL). Returns 0 on a malformed pointer; a null pointer is an empty blob. */
static int blob(const Message *m, const StructRef *s, uint32_t index, int text,
                const unsigned char **out, size_t *len)
{
    *out = (const unsigned char *)"";
    *len = 0;
    if (index >= s->ptr_words) return 1; /* older schema: field absent, default empty */
    uint64_t p, at;
    uint32_t seg;
    int rc = resolve(m, s->seg, s->at + s->data_words + index, &p, &seg, &at);
    if (rc < 0) return 1;
    if (rc == 0 || (p & 3) != 1 || ((p >> 32) & 7) != 2) return 0; /* a list of bytes */
    uint64_t count = p >> 35;
    if (seg >= m->n || at * 8 + count > m->segs[seg].words * 8) return 0;
    const unsigned char *bytes = m->segs[seg].base + at * 8;
    if (text) {
        if (count == 0 || bytes[count - 1] != 0) return 0;
        count -= 1;
    }
    *out = bytes;
    *len = count;
    return 1;
}

static int64_t data_value(const StructRef *s, const Message *m, const Source *src)
{
    const unsigned char *data = m->segs[s->seg].base + s->at * 8;
    size_t bytes = (size_t)s->data_words * 8;
    size_t width = src->kind == C_I32 || src->kind == C_U32 ? 4 : 8;
    if (src->kind == C_BOOL) {
        size_t byte = src->offset / 8;
        return byte < bytes ? (data[byte] >> (src->offset % 8)) & 1 : 0;
    }
    size_t at = (size_t)src->offset * width;
    if (at + width > bytes) return 0; /* field beyond an older struct: its default */
    if (src->kind == C_I32) {
        int32_t v;
        memcpy(&v, data + at, 4);
        return v;
    }
    if (src->kind == C_U32) return (int64_t)rd_u32(data + at);
    return (int64_t)rd_u64(data + at);
}

void capnp_list_free(struct CapnpList *list) { PyMem_Free(list); }

PyObject *capnp_configure(Encoder *enc, PyObject *args)
{
    int id, root, selector, tp_true, tp_false, ts_word;
    long long scale;
    PyObject *sources;
    if (!PyArg_ParseTuple(args, "iiiiiiLO", &id, &root, &selector, &tp_true, &tp_false, &ts_word,
                          &scale, &sources))
        return NULL;
    if (id < 0 || id >= MAX_IDS || tp_true <= 0 || tp_true >= MAX_IDS || tp_false <= 0 ||
        tp_false >= MAX_IDS || !enc->types[tp_true].configured ||
        !enc->types[tp_false].configured) {
        PyErr_SetString(PyExc_ValueError, "list id or record types out of range / unconfigured");
        return NULL;
    }
    if (enc->types[tp_true].sequence != enc->types[tp_false].sequence ||
        enc->types[tp_true].n_fields != enc->types[tp_false].n_fields) {
        PyErr_SetString(PyExc_ValueError, "both record types must share fields and a sequence");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(sources, "sources must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n != enc->types[tp_true].n_fields || n > MAX_FIELDS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "one source per record field");
        return NULL;
    }
    struct CapnpList *list = PyMem_Calloc(1, sizeof(*list));
    if (!list) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    *list = (struct CapnpList){root, selector, tp_true, tp_false, ts_word, scale, n, {{0, 0}}};
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "iI", &list->sources[i].kind,
                              &list->sources[i].offset)) {
            PyMem_Free(list);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    capnp_list_free(enc->lists[id]);
    enc->lists[id] = list;
    Py_RETURN_NONE;
}

/* Encode one element; 0 with a reason if it is malformed. */
static int element(Encoder *enc, const struct CapnpList *list, const Message *m,
                   const StructRef *s, uint64_t receipt_ns, uint64_t node_lost, Result *r)
{
    int tp = list->tp_true;
    if (list->selector_bit >= 0) {
        Source sel = {C_BOOL, (uint32_t)list->selector_bit};
        tp = data_value(s, m, &sel) ? list->tp_true : list->tp_false;
    }
    const RecordType *t = &enc->types[tp];
    Value values[MAX_FIELDS];
    for (Py_ssize_t i = 0; i < list->n_sources; i++) {
        const Source *src = &list->sources[i];
        values[i].p = NULL;
        values[i].len = 0;
        values[i].i = 0;
        if (src->kind == C_TEXT || src->kind == C_DATA) {
            if (!blob(m, s, src->offset, src->kind == C_TEXT, &values[i].p, &values[i].len)) {
                /* Count it like any rejected record of the stream, then say why. */
                Sequence *q = &enc->sequences[t->sequence];
                skip_lost(q, node_lost, STAGE_NODE);
                r->tp_id = tp;
                r->seq = (int64_t)++q->last_seq;
                q->captured++;
                q->dead_lettered++;
                q->lost[STAGE_BRIDGE]++;
                q->pending++;
                reject(r, "field %s: malformed Cap'n Proto pointer", t->fields[i].name);
                return 0;
            }
        } else if (src->kind != C_NONE) {
            values[i].i = data_value(s, m, src);
        }
    }
    uint64_t mono = receipt_ns;
    if (list->ts_word >= 0) {
        Source ts = {C_I64, (uint32_t)list->ts_word};
        mono = (uint64_t)(data_value(s, m, &ts) * list->ts_scale);
    }
    return encode_next(enc, tp, mono, node_lost, values, r);
}

/* A rejected element as a message of its own: one segment whose root is a copy of the
 * struct, its byte-list pointers (Text, Data) re-pointed at copies of their bytes; any
 * other or unreadable pointer becomes null. Why: the dead letter must keep what was
 * wrong, and offsets into a batch the consumer never sees would keep nothing.
 * `capnp decode tracing_net.capnp NetMessage` reads it. Returns NULL with an exception
 * set when out of memory. */
static unsigned char *standalone(const Message *m, const StructRef *s, size_t *out_len)
{
    uint64_t words = 1 + (uint64_t)s->data_words + s->ptr_words;
    for (uint32_t i = 0; i < s->ptr_words; i++) {
        uint64_t p, at;
        uint32_t seg;
        if (resolve(m, s->seg, s->at + s->data_words + i, &p, &seg, &at) > 0 && (p & 3) == 1 &&
            ((p >> 32) & 7) == 2 && seg < m->n && at * 8 + (p >> 35) <= m->segs[seg].words * 8)
            words += ((p >> 35) + 7) / 8;
    }
    if (words > 0xFFFFFFFFu) { /* more than one segment can hold; the input cannot be this big */
        PyErr_SetString(PyExc_OverflowError, "Cap'n Proto struct too large to copy");
        return NULL;
    }
    unsigned char *out = PyMem_Calloc(1, 8 + (size_t)words * 8);
    if (!out) {
        PyErr_NoMemory();
        return NULL;
    }
    unsigned char *seg0 = out + 8;
    uint32_t n_words = (uint32_t)words;
    memcpy(out + 4, &n_words, 4); /* segment count - 1 = 0, then the segment's words */
    uint64_t root = ((uint64_t)s->ptr_words << 48) | ((uint64_t)s->data_words << 32);
    memcpy(seg0, &root, 8); /* struct pointer, offset 0: the data follows */
    memcpy(seg0 + 8, m->segs[s->seg].base + s->at * 8, (size_t)s->data_words * 8);
    uint64_t next = 1 + (uint64_t)s->data_words + s->ptr_words;
    for (uint32_t i = 0; i < s->ptr_words; i++) {
        uint64_t p, at, ptr = 0, slot = 1 + (uint64_t)s->data_words + i;
        uint32_t seg;
        if (resolve(m, s->seg, s->at + s->data_words + i, &p, &seg, &at) > 0 && (p & 3) == 1 &&
            ((p >> 32) & 7) == 2 && seg < m->n && at * 8 + (p >> 35) <= m->segs[seg].words * 8) {
            uint64_t count = p >> 35;
            memcpy(seg0 + next * 8, m->segs[seg].base + at * 8, (size_t)count);
            uint64_t offset = (next - slot - 1) & 0x3FFFFFFF;
            ptr = (count << 35) | ((uint64_t)2 << 32) | (offset << 2) | 1;
            next += (count + 7) / 8;
        }
        memcpy(seg0 + slot * 8, &ptr, 8);
    }
    *out_len = 8 + (size_t)words * 8;
    return out;
}

/* The batch cannot be read: its `expected` events are lost in the bridge (one dead
 * letter stands for all of them), after the node's own drops. */
static int whole_batch_lost(Encoder *enc, const struct CapnpList *list, Sequence *seq,
                            uint64_t dropped, uint64_t expected, const Py_buffer *buf,
                            const char *why, PyObject *good, PyObject *dead)
{
    skip_lost(seq, dropped, STAGE_NODE);
    seq->last_seq += expected;
    seq->captured += expected;
    seq->dead_lettered += expected;
    seq->lost[STAGE_BRIDGE] += expected;
    seq->pending += expected;
    Result r = {0, list->tp_true, -1, "", 0, 0};
    reject(&r, "%s (%zd bytes): its %llu events are lost", why, buf->len,
           (unsigned long long)expected);
    return emit(enc, &r, buf->buf, (size_t)buf->len, good, dead);
}

PyObject *capnp_encode(Encoder *enc, PyObject *args)
{
    int id;
    Py_buffer buf;
    unsigned long long dropped, receipt_ns, expected;
    if (!has_session(enc)) return NULL;
    if (!PyArg_ParseTuple(args, "iy*KKK", &id, &buf, &dropped, &receipt_ns, &expected))
        return NULL;
    PyObject *good = PyList_New(0), *dead = PyList_New(0), *ret = NULL;
    struct CapnpList *list = id >= 0 && id < MAX_IDS ? enc->lists[id] : NULL;
    Message m;
    StructRef root, tag_ref;
    if (!good || !dead) goto out;
    if (!list) {
        PyErr_Format(PyExc_KeyError, "Cap'n Proto list %d is not configured", id);
        goto out;
    }
    Sequence *seq = &enc->sequences[enc->types[list->tp_true].sequence];
    Result r;
    if (!parse_message(buf.buf, (size_t)buf.len, &m) || !struct_at(&m, 0, 0, &root) ||
        (uint32_t)list->root_pointer >= root.ptr_words) {
        if (whole_batch_lost(enc, list, seq, dropped, expected, &buf,
                             "malformed Cap'n Proto message", good, dead) == 0)
            ret = PyTuple_Pack(2, good, dead);
        goto out;
    }
    uint64_t p, at;
    uint32_t lseg;
    int rc = resolve(&m, root.seg, root.at + root.data_words + (uint32_t)list->root_pointer, &p,
                     &lseg, &at);
    uint64_t count = 0;
    if (rc > 0 && (p & 3) == 1 && ((p >> 32) & 7) == 7) { /* composite list */
        uint64_t tag;
        if (word_at(&m, lseg, at, &tag) && (tag & 3) == 0) {
            count = (tag >> 2) & 0x3FFFFFFF;
            tag_ref.seg = lseg;
            tag_ref.data_words = (uint32_t)((tag >> 32) & 0xFFFF);
            tag_ref.ptr_words = (uint32_t)(tag >> 48);
            uint64_t per = tag_ref.data_words + tag_ref.ptr_words;
            if (at + 1 + count * per > m.segs[lseg].words) count = 0, rc = 0;
        } else {
            rc = 0;
        }
    } else if (rc > 0) {
        rc = 0;
    }
    if (rc == 0 || count != expected) {
        if (whole_batch_lost(enc, list, seq, dropped, expected, &buf,
                             rc == 0 ? "malformed Cap'n Proto list"
                                     : "Cap'n Proto list length differs from the call's",
                             good, dead) == 0)
            ret = PyTuple_Pack(2, good, dead);
        goto out;
    }
    if (count == 0) skip_lost(seq, dropped, STAGE_NODE); /* a batch of drops only */
    for (uint64_t i = 0; i < count; i++) {
        StructRef s = tag_ref;
        s.at = at + 1 + i * (tag_ref.data_words + tag_ref.ptr_words);
        r = (Result){1, -1, -1, "", 0, 0};
        int ok = element(enc, list, &m, &s, receipt_ns, i == 0 ? dropped : 0, &r);
        if (ok < 0) goto out;
        if (r.ok) {
            if (emit(enc, &r, NULL, 0, good, dead) < 0) goto out;
            continue;
        }
        size_t raw_len = 0;
        unsigned char *raw = standalone(&m, &s, &raw_len);
        int emitted = raw ? emit(enc, &r, raw, raw_len, good, dead) : -1;
        PyMem_Free(raw);
        if (emitted < 0) goto out;
    }
    ret = PyTuple_Pack(2, good, dead);
out:
    Py_XDECREF(good);
    Py_XDECREF(dead);
    PyBuffer_Release(&buf);
    return ret;
}
