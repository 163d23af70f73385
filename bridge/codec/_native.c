/* bridge.codec._native: the bridge's hot path, ring record -> Avro bytes, in C.
 *
 * Why C: at 200k+ events/s on two shared cores, per-event Python work is the limit
 * (../shared/reference/performance-limits.md: fastavro costs 4-6 us/record, a BCC
 * callback per event 2-3 us). This module drains a BPF ring buffer directly from its
 * mmap, validates each record and writes the Avro single-object encoding of the
 * envelope + event in one pass, leaving Python one produce() per event.
 *
 * Nothing here knows an event's fields: Python configures one field table per stream
 * from the catalogue (bridge/codec/native.py). The envelope is written in the order of
 * bridge/events/envelope.py; tests/unit/codec compares every output with fastavro.
 *
 * Loss bookkeeping lives here too, because each record's envelope carries it:
 *   pending  losses to report in the next good record's lost_before (a dead letter,
 *            a backpressure drop, and the kernel gap in front of a dead letter)
 *   lost[]   running totals by stage: kernel, bridge, producer, node
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#define MAX_STREAMS 256
#define HEADER_SIZE 32
#define FLAG_READ_ERROR 1u
#define RINGBUF_BUSY_BIT (1u << 31)
#define RINGBUF_DISCARD_BIT (1u << 30)
#define RINGBUF_HDR_SIZE 8
#define N_STAGES 4

enum kind { K_I32 = 0, K_U32, K_I64, K_U64, K_BOOL, K_HASH32, K_CSTR, K_PAYLOAD };

typedef struct {
    int kind;
    uint32_t offset;
    uint32_t size;
    int hex;              /* HASH32: also write the display hex string */
    uint32_t len_offset;  /* PAYLOAD: offset of the u64 full-size argument */
    Py_ssize_t n_enum;    /* 0: not an enum */
    int64_t *enum_ints;   /* integer enum values, in symbol order (index + 1) */
    char **enum_strs;     /* string enum values, in symbol order (index + 1) */
    char name[64];
} Field;

typedef struct {
    int configured;
    uint32_t fixed_size;
    int has_payload;
    uint32_t payload_offset; /* offset of the u32 captured length */
    unsigned char framing[16]; /* written before the body: single-object or registry */
    Py_ssize_t framing_len;
    char *stream;            /* stream name, e.g. "net:inbound_message" */
    Py_ssize_t stream_len;
    Field *fields;
    Py_ssize_t n_fields;
    unsigned char *prefix;   /* framing + node_id + source + session_id + stream */
    Py_ssize_t prefix_len;
    /* counters, reset by set_session() */
    uint64_t captured, last_seq, dead_lettered, pending;
    uint64_t lost[N_STAGES];
} Stream;

typedef struct {
    PyObject_HEAD
    Stream streams[MAX_STREAMS];
    unsigned char *session_enc; /* node_id, source, session_id: Avro-encoded */
    Py_ssize_t session_len;
    int64_t wall_offset_ns;
    unsigned char *out;
    size_t out_cap;
} Encoder;

/* ---------------------------------------------------------------- Avro primitives */

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
    memcpy(p + n, data, len);
    return n + len;
}

static inline uint64_t rd_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t rd_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t rd_u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as Python's decoder. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) { need = 1; cp = c & 0x1F; if (c < 0xC2) return 0; }
        else if ((c & 0xF0) == 0xE0) { need = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { need = 3; cp = c & 0x07; if (c > 0xF4) return 0; }
        else return 0;
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
static size_t trim_partial_utf8(const unsigned char *s, size_t n)
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

static const char HEX[] = "0123456789abcdef";

/* ------------------------------------------------------------------ encoding */

/* Result of encoding one record: either a value or a rejection reason. */
typedef struct {
    int ok;
    int tp_id;         /* -1 when the header could not be read */
    int64_t seq;       /* -1 when unknown */
    char reason[160];
    size_t len;        /* bytes written to enc->out */
    int64_t ts_ms;
} Result;

static int ensure_out(Encoder *enc, size_t need)
{
    if (need <= enc->out_cap) return 0;
    size_t cap = enc->out_cap ? enc->out_cap : 4096;
    while (cap < need) cap *= 2;
    unsigned char *p = PyMem_Realloc(enc->out, cap);
    if (!p) { PyErr_NoMemory(); return -1; }
    enc->out = p;
    enc->out_cap = cap;
    return 0;
}

static void reject(Result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    r->ok = 0;
}

/* Validate a record's fields; fill r->reason on the first problem. The reasons match
 * bridge/events/decoder.py's, so a dead letter reads the same whichever path made it. */
static int validate(const Stream *s, const unsigned char *rec, size_t len, Result *r)
{
    if (len < s->fixed_size) {
        reject(r, "record of %zu bytes is shorter than %s's %u", len, s->stream, s->fixed_size);
        return 0;
    }
    if (rd_u16(rec + 26) & FLAG_READ_ERROR) {
        reject(r, "a pointer argument could not be read at the probe");
        return 0;
    }
    for (Py_ssize_t i = 0; i < s->n_fields; i++) {
        const Field *f = &s->fields[i];
        const unsigned char *p = rec + f->offset;
        if (f->kind == K_PAYLOAD) {
            uint32_t captured = rd_u32(p);
            if ((size_t)captured != len - s->fixed_size) {
                reject(r, "field %s: %u bytes captured but %zu present", f->name, captured,
                       len - s->fixed_size);
                return 0;
            }
        } else if (f->kind == K_CSTR) {
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
        }
    }
    if (!s->has_payload && len != s->fixed_size) {
        reject(r, "record of %zu bytes, %s records are %u", len, s->stream, s->fixed_size);
        return 0;
    }
    return 1;
}

/* Encode a validated record into enc->out. */
static size_t encode(Encoder *enc, Stream *s, const unsigned char *rec, size_t len,
                     uint64_t lost_before)
{
    unsigned char *o = enc->out;
    size_t n = 0;
    memcpy(o, s->prefix, (size_t)s->prefix_len);
    n += (size_t)s->prefix_len;
    /* u64 header values are written with the same bits as Avro longs; adding the wall
     * offset in unsigned arithmetic keeps a corrupt timestamp from being C UB. */
    uint64_t mono = rd_u64(rec + 8);
    n += put_long(o + n, (int64_t)rd_u64(rec));
    n += put_long(o + n, (int64_t)mono);
    n += put_long(o + n, (int64_t)(mono + (uint64_t)enc->wall_offset_ns));
    n += put_long(o + n, (int64_t)lost_before);
    for (int k = 0; k < N_STAGES; k++)
        n += put_long(o + n, (int64_t)s->lost[k]);

    for (Py_ssize_t i = 0; i < s->n_fields; i++) {
        const Field *f = &s->fields[i];
        const unsigned char *p = rec + f->offset;
        switch (f->kind) {
        case K_I32: {
            int32_t v; memcpy(&v, p, 4);
            if (f->n_enum) goto int_enum;
            n += put_long(o + n, v);
            break;
        }
        case K_U32: {
            if (f->n_enum) goto int_enum;
            n += put_long(o + n, (int64_t)rd_u32(p));
            break;
        }
        case K_I64:
        case K_U64:
            n += put_long(o + n, (int64_t)rd_u64(p));
            break;
        case K_BOOL:
            o[n++] = p[0] ? 1 : 0;
            break;
        case K_HASH32:
            memcpy(o + n, p, 32);
            n += 32;
            if (f->hex) {
                o[n++] = 0x80; /* varint of zigzag(64) = 128 */
                o[n++] = 0x01;
                for (int b = 31; b >= 0; b--) {
                    o[n++] = (unsigned char)HEX[p[b] >> 4];
                    o[n++] = (unsigned char)HEX[p[b] & 15];
                }
            }
            break;
        case K_CSTR: {
            size_t sl = strnlen((const char *)p, f->size);
            if (sl == f->size - 1) sl = trim_partial_utf8(p, sl);
            if (f->n_enum) {
                Py_ssize_t idx = 0;
                for (Py_ssize_t e = 0; e < f->n_enum; e++)
                    if (strlen(f->enum_strs[e]) == sl && memcmp(f->enum_strs[e], p, sl) == 0) {
                        idx = e + 1;
                        break;
                    }
                n += put_long(o + n, idx);
                if (idx) {
                    o[n++] = 0; /* union branch 0: null */
                } else {
                    o[n++] = 2; /* union branch 1: string */
                    n += put_bytes(o + n, p, sl);
                }
            } else {
                n += put_bytes(o + n, p, sl);
            }
            break;
        }
        case K_PAYLOAD: {
            uint32_t captured = rd_u32(p);
            n += put_bytes(o + n, rec + s->fixed_size, captured);
            o[n++] = rd_u64(rec + f->len_offset) > (uint64_t)captured ? 1 : 0;
            break;
        }
        }
        continue;
    int_enum: {
            int64_t raw = f->kind == K_I32 ? (int64_t)(int32_t)rd_u32(p) : (int64_t)rd_u32(p);
            Py_ssize_t idx = 0;
            for (Py_ssize_t e = 0; e < f->n_enum; e++)
                if (f->enum_ints[e] == raw) { idx = e + 1; break; }
            n += put_long(o + n, idx);
            if (idx) {
                o[n++] = 0;
            } else {
                o[n++] = 2;
                n += put_long(o + n, raw);
            }
        }
    }
    (void)len;
    return n;
}

/* Upper bound of one record's encoding: prefix + envelope longs + per-field worst case. */
static size_t worst_case(const Stream *s, size_t len)
{
    size_t n = (size_t)s->prefix_len + 10 * (4 + N_STAGES);
    for (Py_ssize_t i = 0; i < s->n_fields; i++) {
        const Field *f = &s->fields[i];
        n += 12 + f->size + (f->kind == K_HASH32 ? 66 : 0) + (f->n_enum ? f->size + 12 : 0);
    }
    return n + len; /* payload bytes */
}

/* Validate + encode one record, updating the stream's counters. */
static int process(Encoder *enc, const unsigned char *rec, size_t len, Result *r)
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
    if (tp <= 0 || tp >= MAX_STREAMS || !enc->streams[tp].configured) {
        reject(r, "unknown tracepoint id %d", tp);
        return 0;
    }
    r->tp_id = tp;
    Stream *s = &enc->streams[tp];
    s->captured++;
    if (seq > s->last_seq) s->last_seq = seq;
    s->lost[0] += kernel_before;
    if (!validate(s, rec, len, r)) {
        s->dead_lettered++;
        s->lost[1] += 1;
        s->pending += kernel_before + 1;
        return 0;
    }
    if (ensure_out(enc, worst_case(s, len)) < 0) return -1;
    uint64_t lost_before = kernel_before + s->pending;
    s->pending = 0;
    r->len = encode(enc, s, rec, len, lost_before);
    r->ts_ms = (int64_t)(rd_u64(rec + 8) + (uint64_t)enc->wall_offset_ns) / 1000000;
    return 0;
}

/* ------------------------------------------------------------------ Python API */

static void free_stream(Stream *s)
{
    for (Py_ssize_t i = 0; i < s->n_fields; i++) {
        Field *f = &s->fields[i];
        if (f->enum_strs) {
            for (Py_ssize_t e = 0; e < f->n_enum; e++) PyMem_Free(f->enum_strs[e]);
            PyMem_Free(f->enum_strs);
        }
        PyMem_Free(f->enum_ints);
    }
    PyMem_Free(s->fields);
    PyMem_Free(s->stream);
    PyMem_Free(s->prefix);
    memset(s, 0, sizeof(*s));
}

static void Encoder_dealloc(Encoder *self)
{
    for (int i = 0; i < MAX_STREAMS; i++) free_stream(&self->streams[i]);
    PyMem_Free(self->session_enc);
    PyMem_Free(self->out);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int rebuild_prefix(Encoder *self, Stream *s)
{
    PyMem_Free(s->prefix);
    s->prefix_len = s->framing_len + self->session_len + 10 + s->stream_len;
    s->prefix = PyMem_Malloc((size_t)s->prefix_len);
    if (!s->prefix) { PyErr_NoMemory(); return -1; }
    unsigned char *p = s->prefix;
    memcpy(p, s->framing, (size_t)s->framing_len);
    size_t n = (size_t)s->framing_len;
    if (self->session_len) memcpy(p + n, self->session_enc, (size_t)self->session_len);
    n += (size_t)self->session_len;
    n += put_bytes(p + n, s->stream, (size_t)s->stream_len);
    s->prefix_len = (Py_ssize_t)n;
    return 0;
}

PyDoc_STRVAR(configure_stream_doc,
"configure_stream(tp_id, framing, stream, fixed_size, fields)\n\n"
"framing: the bytes every value starts with (single-object: C3 01 + fingerprint;\n"
"Schema Registry: 00 + 4-byte schema id), at most 16.\n"
"fields: sequence of (kind, offset, size, hex, len_offset, enum_values, name) in Avro\n"
"order; enum_values is a tuple of ints or strs (symbol i+1) or None.");

static PyObject *Encoder_configure_stream(Encoder *self, PyObject *args)
{
    int tp;
    Py_buffer fp;
    const char *stream;
    Py_ssize_t stream_len;
    unsigned int fixed_size;
    PyObject *fields;
    if (!PyArg_ParseTuple(args, "iy*s#IO", &tp, &fp, &stream, &stream_len, &fixed_size, &fields))
        return NULL;
    if (tp <= 0 || tp >= MAX_STREAMS || fp.len > 16) {
        PyBuffer_Release(&fp);
        PyErr_SetString(PyExc_ValueError, "tp_id must be 1..255 and framing at most 16 bytes");
        return NULL;
    }
    Stream *s = &self->streams[tp];
    free_stream(s);
    memcpy(s->framing, fp.buf, (size_t)fp.len);
    s->framing_len = fp.len;
    PyBuffer_Release(&fp);
    s->fixed_size = fixed_size;
    s->stream = PyMem_Malloc((size_t)stream_len + 1);
    if (!s->stream) return PyErr_NoMemory();
    memcpy(s->stream, stream, (size_t)stream_len);
    s->stream[stream_len] = 0;
    s->stream_len = stream_len;
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence");
    if (!seq) return NULL;
    s->n_fields = PySequence_Fast_GET_SIZE(seq);
    s->fields = PyMem_Calloc((size_t)s->n_fields + 1, sizeof(Field));
    if (!s->fields) { Py_DECREF(seq); return PyErr_NoMemory(); }
    for (Py_ssize_t i = 0; i < s->n_fields; i++) {
        Field *f = &s->fields[i];
        PyObject *enum_values;
        const char *name;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "iIIpIOs", &f->kind, &f->offset,
                              &f->size, &f->hex, &f->len_offset, &enum_values, &name))
            goto fail;
        snprintf(f->name, sizeof(f->name), "%s", name);
        if (f->offset + f->size > fixed_size) {
            PyErr_Format(PyExc_ValueError, "field %s lies outside the record", name);
            goto fail;
        }
        if (f->kind == K_PAYLOAD) {
            s->has_payload = 1;
            s->payload_offset = f->offset;
        }
        if (enum_values != Py_None) {
            PyObject *ev = PySequence_Fast(enum_values, "enum values must be a sequence");
            if (!ev) goto fail;
            f->n_enum = PySequence_Fast_GET_SIZE(ev);
            if (f->kind == K_CSTR) {
                f->enum_strs = PyMem_Calloc((size_t)f->n_enum, sizeof(char *));
                for (Py_ssize_t e = 0; f->enum_strs && e < f->n_enum; e++) {
                    Py_ssize_t sl;
                    const char *sv = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(ev, e), &sl);
                    if (!sv) { Py_DECREF(ev); goto fail; }
                    f->enum_strs[e] = PyMem_Malloc((size_t)sl + 1);
                    memcpy(f->enum_strs[e], sv, (size_t)sl + 1);
                }
            } else {
                f->enum_ints = PyMem_Calloc((size_t)f->n_enum, sizeof(int64_t));
                for (Py_ssize_t e = 0; f->enum_ints && e < f->n_enum; e++)
                    f->enum_ints[e] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(ev, e));
            }
            Py_DECREF(ev);
            if (PyErr_Occurred()) goto fail;
        }
    }
    Py_DECREF(seq);
    s->configured = 1;
    if (rebuild_prefix(self, s) < 0) return NULL;
    Py_RETURN_NONE;
fail:
    Py_DECREF(seq);
    free_stream(s);
    return NULL;
}

PyDoc_STRVAR(set_session_doc,
"set_session(node_id, source_index, session_id, wall_offset_ns)\n\n"
"Start a new session: envelope constants change and every counter is reset.");

static PyObject *Encoder_set_session(Encoder *self, PyObject *args)
{
    const char *node, *session;
    Py_ssize_t node_len, session_len;
    int source;
    long long offset;
    if (!PyArg_ParseTuple(args, "s#is#L", &node, &node_len, &source, &session, &session_len,
                          &offset))
        return NULL;
    PyMem_Free(self->session_enc);
    self->session_enc = PyMem_Malloc((size_t)(node_len + session_len + 40));
    if (!self->session_enc) return PyErr_NoMemory();
    size_t n = put_bytes(self->session_enc, node, (size_t)node_len);
    n += put_long(self->session_enc + n, source);
    n += put_bytes(self->session_enc + n, session, (size_t)session_len);
    self->session_len = (Py_ssize_t)n;
    self->wall_offset_ns = offset;
    for (int i = 0; i < MAX_STREAMS; i++) {
        Stream *s = &self->streams[i];
        if (!s->configured) continue;
        s->captured = s->last_seq = s->dead_lettered = s->pending = 0;
        memset(s->lost, 0, sizeof(s->lost));
        if (rebuild_prefix(self, s) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Encoder_set_wall_offset(Encoder *self, PyObject *arg)
{
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    self->wall_offset_ns = v;
    Py_RETURN_NONE;
}

static Stream *stream_arg(Encoder *self, int tp)
{
    if (tp <= 0 || tp >= MAX_STREAMS || !self->streams[tp].configured) {
        PyErr_Format(PyExc_KeyError, "stream %d is not configured", tp);
        return NULL;
    }
    return &self->streams[tp];
}

PyDoc_STRVAR(add_loss_doc,
"add_loss(tp_id, stage, count, report_in_next)\n\n"
"Count losses decided in Python (backpressure drops, failed deliveries). With\n"
"report_in_next they are also added to the next record's lost_before.");

static PyObject *Encoder_add_loss(Encoder *self, PyObject *args)
{
    int tp, stage, report;
    unsigned long long count;
    if (!PyArg_ParseTuple(args, "iiKp", &tp, &stage, &count, &report)) return NULL;
    Stream *s = stream_arg(self, tp);
    if (!s) return NULL;
    if (stage < 0 || stage >= N_STAGES) {
        PyErr_SetString(PyExc_ValueError, "stage out of range");
        return NULL;
    }
    s->lost[stage] += count;
    if (report) s->pending += count;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(counters_doc,
"counters(tp_id) -> (captured, last_seq, dead_lettered, pending, kernel, bridge, producer, node)");

static PyObject *Encoder_counters(Encoder *self, PyObject *arg)
{
    long tp = PyLong_AsLong(arg);
    if (tp == -1 && PyErr_Occurred()) return NULL;
    Stream *s = stream_arg(self, (int)tp);
    if (!s) return NULL;
    return Py_BuildValue("(KKKKKKKK)", s->captured, s->last_seq, s->dead_lettered, s->pending,
                         s->lost[0], s->lost[1], s->lost[2], s->lost[3]);
}

/* Append one result to the output lists. */
static int emit(Encoder *self, const Result *r, const unsigned char *rec, size_t len,
                PyObject *good, PyObject *dead)
{
    PyObject *item;
    if (r->ok) {
        item = Py_BuildValue("(iy#L)", r->tp_id, (const char *)self->out, (Py_ssize_t)r->len,
                             (long long)r->ts_ms);
        if (!item) return -1;
        int rc = PyList_Append(good, item);
        Py_DECREF(item);
        return rc;
    }
    item = Py_BuildValue("(iLy#s)", r->tp_id, (long long)r->seq, (const char *)rec,
                         (Py_ssize_t)len, r->reason);
    if (!item) return -1;
    int rc = PyList_Append(dead, item);
    Py_DECREF(item);
    return rc;
}

PyDoc_STRVAR(encode_one_doc,
"encode_one(raw) -> ([(tp_id, value, ts_ms)], [(tp_id, seq, raw, reason)])\n\n"
"Encode a single ring record (header included), exactly as drain() would.");

static PyObject *Encoder_encode_one(Encoder *self, PyObject *arg)
{
    Py_buffer raw;
    if (PyObject_GetBuffer(arg, &raw, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *good = PyList_New(0), *dead = PyList_New(0);
    Result r;
    PyObject *ret = NULL;
    if (good && dead && process(self, raw.buf, (size_t)raw.len, &r) == 0 &&
        emit(self, &r, raw.buf, (size_t)raw.len, good, dead) == 0)
        ret = PyTuple_Pack(2, good, dead);
    Py_XDECREF(good);
    Py_XDECREF(dead);
    PyBuffer_Release(&raw);
    return ret;
}

PyDoc_STRVAR(drain_doc,
"drain(consumer_page, producer_area, ring_size, page_size, max_records)\n"
"    -> ([(tp_id, value, ts_ms)], [(tp_id, seq, raw, reason)], records_read)\n\n"
"Read committed records from an mmapped BPF ring buffer (the kernel's layout: a\n"
"writable consumer page, then a read-only producer page followed by the data area\n"
"mapped twice), encode them, and advance the consumer position.");

static PyObject *Encoder_drain(Encoder *self, PyObject *args)
{
    PyObject *cons_obj, *prod_obj;
    unsigned long long ring_size;
    Py_ssize_t page_size, max_records;
    if (!PyArg_ParseTuple(args, "OOKnn", &cons_obj, &prod_obj, &ring_size, &page_size,
                          &max_records))
        return NULL;
    if (ring_size == 0 || (ring_size & (ring_size - 1))) {
        PyErr_SetString(PyExc_ValueError, "ring_size must be a power of two");
        return NULL;
    }
    Py_buffer cons, prod;
    if (PyObject_GetBuffer(cons_obj, &cons, PyBUF_WRITABLE) < 0) return NULL;
    if (PyObject_GetBuffer(prod_obj, &prod, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&cons);
        return NULL;
    }
    PyObject *good = PyList_New(0), *dead = PyList_New(0), *ret = NULL;
    if (!good || !dead) goto out;
    if (cons.len < 8 || (unsigned long long)prod.len < (unsigned long long)page_size + 2 * ring_size) {
        PyErr_SetString(PyExc_ValueError, "ring mappings are smaller than the ring");
        goto out;
    }
    uint64_t *cons_pos_p = (uint64_t *)cons.buf;
    const uint64_t *prod_pos_p = (const uint64_t *)prod.buf;
    const unsigned char *data = (const unsigned char *)prod.buf + page_size;
    uint64_t mask = ring_size - 1;
    uint64_t cpos = __atomic_load_n(cons_pos_p, __ATOMIC_ACQUIRE);
    uint64_t ppos = __atomic_load_n(prod_pos_p, __ATOMIC_ACQUIRE);
    Py_ssize_t n = 0;
    while (cpos < ppos && n < max_records) {
        const unsigned char *hdr = data + (cpos & mask);
        uint32_t len_word = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);
        if (len_word & RINGBUF_BUSY_BIT) break; /* reserved, not yet committed */
        uint32_t len = len_word & ~(RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT);
        if (!(len_word & RINGBUF_DISCARD_BIT)) {
            /* The data area is mapped twice, so a record that wraps is contiguous. */
            Result r;
            if (process(self, hdr + RINGBUF_HDR_SIZE, len, &r) < 0 ||
                emit(self, &r, hdr + RINGBUF_HDR_SIZE, len, good, dead) < 0)
                goto out;
            n++;
        }
        cpos += (RINGBUF_HDR_SIZE + (uint64_t)len + 7) & ~(uint64_t)7;
    }
    /* Only now may the kernel reuse the space: every record has been copied out. */
    __atomic_store_n(cons_pos_p, cpos, __ATOMIC_RELEASE);
    ret = Py_BuildValue("(OOn)", good, dead, n);
out:
    Py_XDECREF(good);
    Py_XDECREF(dead);
    PyBuffer_Release(&cons);
    PyBuffer_Release(&prod);
    return ret;
}

static PyMethodDef Encoder_methods[] = {
    {"configure_stream", (PyCFunction)Encoder_configure_stream, METH_VARARGS, configure_stream_doc},
    {"set_session", (PyCFunction)Encoder_set_session, METH_VARARGS, set_session_doc},
    {"set_wall_offset", (PyCFunction)Encoder_set_wall_offset, METH_O, "set_wall_offset(ns)"},
    {"add_loss", (PyCFunction)Encoder_add_loss, METH_VARARGS, add_loss_doc},
    {"counters", (PyCFunction)Encoder_counters, METH_O, counters_doc},
    {"encode_one", (PyCFunction)Encoder_encode_one, METH_O, encode_one_doc},
    {"drain", (PyCFunction)Encoder_drain, METH_VARARGS, drain_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bridge.codec._native.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Ring record -> Avro single-object encoder with per-stream loss counters.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_native",
    .m_doc = "tracebridge hot path (see _native.c).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__native(void)
{
    if (PyType_Ready(&EncoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&EncoderType);
    if (PyModule_AddObject(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(&EncoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
