/* bridge.codec._native: the bridge's hot path, events -> Avro bytes, in C.
 *
 * Why C: at 200k+ events/s on two shared cores, per-event Python work is the limit
 * (../shared/reference/performance-limits.md: fastavro costs 4-6 us/record, a BCC
 * callback per event 2-3 us, a pycapnp field read ~0.4 us). This module turns events
 * into Avro single-object (or registry-framed) records carrying the envelope, and keeps
 * the per-sequence loss counters the envelope needs, leaving Python one produce() call
 * per event. Inputs: BPF ring records (ring.c, drained straight from the ring's mmap
 * here), Python values (IPC callbacks), and Cap'n Proto lists (capnp.c).
 *
 * The module knows no event: bridge/codec/native.py configures every sequence and
 * record type from the catalogue. See native.h for the tables.
 */
#include "native.h"

#define RINGBUF_BUSY_BIT (1u << 31)
#define RINGBUF_DISCARD_BIT (1u << 30)
#define RINGBUF_HDR_SIZE 8

/* ------------------------------------------------------------------ lifecycle */

static void free_type(RecordType *t)
{
    for (Py_ssize_t i = 0; i < t->n_fields; i++) {
        Field *f = &t->fields[i];
        if (f->enum_strs) {
            for (Py_ssize_t e = 0; e < f->n_enum; e++) PyMem_Free(f->enum_strs[e]);
            PyMem_Free(f->enum_strs);
        }
        PyMem_Free(f->enum_ints);
    }
    PyMem_Free(t->fields);
    PyMem_Free(t->prefix);
    memset(t, 0, sizeof(*t));
}

static void Encoder_dealloc(Encoder *self)
{
    for (int i = 0; i < MAX_IDS; i++) {
        free_type(&self->types[i]);
        PyMem_Free(self->sequences[i].name);
        capnp_list_free(self->lists[i]);
    }
    for (int i = 0; i < self->redaction.n_types; i++) PyMem_Free(self->redaction.types[i]);
    memset(&self->redaction, 0, sizeof(self->redaction)); /* the key's HMAC states */
    PyMem_Free(self->session_enc);
    PyMem_Free(self->out);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int rebuild_prefix(Encoder *self, RecordType *t)
{
    const Sequence *s = &self->sequences[t->sequence];
    PyMem_Free(t->prefix);
    t->prefix = PyMem_Malloc((size_t)(t->framing_len + self->session_len + 10 + s->name_len));
    if (!t->prefix) {
        PyErr_NoMemory();
        return -1;
    }
    size_t n = (size_t)t->framing_len;
    memcpy(t->prefix, t->framing, n);
    if (self->session_len) memcpy(t->prefix + n, self->session_enc, (size_t)self->session_len);
    n += (size_t)self->session_len;
    n += put_bytes(t->prefix + n, s->name, (size_t)s->name_len);
    t->prefix_len = (Py_ssize_t)n;
    return 0;
}

static Sequence *sequence_arg(Encoder *self, int id)
{
    if (id <= 0 || id >= MAX_IDS || !self->sequences[id].configured) {
        PyErr_Format(PyExc_KeyError, "sequence %d is not configured", id);
        return NULL;
    }
    return &self->sequences[id];
}

static int type_arg(Encoder *self, int tp)
{
    if (tp <= 0 || tp >= MAX_IDS || !self->types[tp].configured) {
        PyErr_Format(PyExc_KeyError, "record type %d is not configured", tp);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ configuration */

PyDoc_STRVAR(configure_sequence_doc,
"configure_sequence(id, name)\n\n"
"A sequence: what one seq counts (name = the envelope's `stream`).");

static PyObject *Encoder_configure_sequence(Encoder *self, PyObject *args)
{
    int id;
    const char *name;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "is#", &id, &name, &len)) return NULL;
    if (id <= 0 || id >= MAX_IDS) {
        PyErr_SetString(PyExc_ValueError, "sequence id must be 1..255");
        return NULL;
    }
    Sequence *s = &self->sequences[id];
    PyMem_Free(s->name);
    memset(s, 0, sizeof(*s));
    s->name = PyMem_Malloc((size_t)len + 1);
    if (!s->name) return PyErr_NoMemory();
    memcpy(s->name, name, (size_t)len);
    s->name[len] = 0;
    s->name_len = len;
    s->configured = 1;
    for (int i = 0; i < MAX_IDS; i++)
        if (self->types[i].configured && self->types[i].sequence == id &&
            rebuild_prefix(self, &self->types[i]) < 0)
            return NULL;
    Py_RETURN_NONE;
}

static int parse_field(Field *f, PyObject *row, uint32_t fixed_size, Py_ssize_t n_fields)
{
    PyObject *enum_values;
    const char *name;
    f->type_index = -1;
    if (!PyArg_ParseTuple(row, "iIIpiOs|pi", &f->kind, &f->offset, &f->size, &f->hex,
                          &f->length_index, &enum_values, &name, &f->address, &f->type_index))
        return -1;
    snprintf(f->name, sizeof(f->name), "%s", name);
    if (f->kind < K_I32 || f->kind > K_PAYLOAD) {
        PyErr_Format(PyExc_ValueError, "field %s: unknown kind %d", name, f->kind);
        return -1;
    }
    if (fixed_size && f->offset + f->size > fixed_size) {
        PyErr_Format(PyExc_ValueError, "field %s lies outside the record", name);
        return -1;
    }
    if (f->kind == K_PAYLOAD && (f->length_index < 0 || f->length_index >= n_fields)) {
        PyErr_Format(PyExc_ValueError, "field %s: bad length index", name);
        return -1;
    }
    if (f->address && (f->kind != K_CSTR || enum_values != Py_None)) {
        PyErr_Format(PyExc_ValueError, "field %s: only plain strings can be addresses", name);
        return -1;
    }
    if (f->type_index >= n_fields || (f->type_index >= 0 && f->kind != K_PAYLOAD)) {
        PyErr_Format(PyExc_ValueError, "field %s: bad message type index", name);
        return -1;
    }
    if (enum_values == Py_None) return 0;
    PyObject *ev = PySequence_Fast(enum_values, "enum values must be a sequence");
    if (!ev) return -1;
    f->n_enum = PySequence_Fast_GET_SIZE(ev);
    if (f->kind == K_CSTR) {
        f->enum_strs = PyMem_Calloc((size_t)f->n_enum + 1, sizeof(char *));
        for (Py_ssize_t e = 0; f->enum_strs && e < f->n_enum; e++) {
            Py_ssize_t sl;
            const char *sv = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(ev, e), &sl);
            if (!sv) break;
            f->enum_strs[e] = PyMem_Malloc((size_t)sl + 1);
            if (f->enum_strs[e]) memcpy(f->enum_strs[e], sv, (size_t)sl + 1);
        }
    } else {
        f->enum_ints = PyMem_Calloc((size_t)f->n_enum + 1, sizeof(int64_t));
        for (Py_ssize_t e = 0; f->enum_ints && e < f->n_enum; e++)
            f->enum_ints[e] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(ev, e));
    }
    Py_DECREF(ev);
    if ((!f->enum_strs && !f->enum_ints) && !PyErr_Occurred()) PyErr_NoMemory();
    return PyErr_Occurred() ? -1 : 0;
}

PyDoc_STRVAR(configure_stream_doc,
"configure_stream(tp_id, framing, sequence, fixed_size, fields)\n\n"
"A record type. framing: the bytes every value starts with (single-object C3 01 +\n"
"fingerprint, or registry 00 + id; at most 16). fixed_size: its ring layout size, 0\n"
"if it never comes from a ring. fields: (kind, offset, size, hex, length_index,\n"
"enum_values, name) in Avro order.");

static PyObject *Encoder_configure_stream(Encoder *self, PyObject *args)
{
    int tp, seq_id;
    Py_buffer fp;
    unsigned int fixed_size;
    PyObject *fields;
    if (!PyArg_ParseTuple(args, "iy*iIO", &tp, &fp, &seq_id, &fixed_size, &fields)) return NULL;
    if (tp <= 0 || tp >= MAX_IDS || fp.len > 16 || !sequence_arg(self, seq_id)) {
        PyBuffer_Release(&fp);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "tp_id must be 1..255, framing at most 16 bytes");
        return NULL;
    }
    RecordType *t = &self->types[tp];
    free_type(t);
    memcpy(t->framing, fp.buf, (size_t)fp.len);
    t->framing_len = fp.len;
    PyBuffer_Release(&fp);
    t->sequence = seq_id;
    t->fixed_size = fixed_size;
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence");
    if (!seq) return NULL;
    t->n_fields = PySequence_Fast_GET_SIZE(seq);
    if (t->n_fields > MAX_FIELDS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "too many fields");
        return NULL;
    }
    t->fields = PyMem_Calloc((size_t)t->n_fields + 1, sizeof(Field));
    if (!t->fields) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < t->n_fields; i++) {
        if (parse_field(&t->fields[i], PySequence_Fast_GET_ITEM(seq, i), fixed_size,
                        t->n_fields) < 0) {
            Py_DECREF(seq);
            free_type(t);
            return NULL;
        }
        if (t->fields[i].kind == K_PAYLOAD) t->has_payload = 1;
    }
    Py_DECREF(seq);
    t->configured = 1;
    if (rebuild_prefix(self, t) < 0) return NULL;
    Py_RETURN_NONE;
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
    for (int i = 0; i < MAX_IDS; i++) {
        Sequence *s = &self->sequences[i];
        s->captured = s->last_seq = s->dead_lettered = s->pending = 0;
        memset(s->lost, 0, sizeof(s->lost));
        if (self->types[i].configured && rebuild_prefix(self, &self->types[i]) < 0) return NULL;
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

PyDoc_STRVAR(add_loss_doc,
"add_loss(sequence, stage, count, report_in_next)\n\n"
"Count losses decided in Python (backpressure drops, failed deliveries). With\n"
"report_in_next they are also added to the next record's lost_before.");

static PyObject *Encoder_add_loss(Encoder *self, PyObject *args)
{
    int id, stage, report;
    unsigned long long count;
    if (!PyArg_ParseTuple(args, "iiKp", &id, &stage, &count, &report)) return NULL;
    Sequence *s = sequence_arg(self, id);
    if (!s) return NULL;
    if (stage < 0 || stage >= N_STAGES) {
        PyErr_SetString(PyExc_ValueError, "stage out of range");
        return NULL;
    }
    s->lost[stage] += count;
    if (report) s->pending += count;
    Py_RETURN_NONE;
}

/* One Avro long (zigzag varint) at *p; -1 if it runs past end or over 10 bytes. */
static int take_long(const unsigned char **p, const unsigned char *end, int64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*p >= end) return -1;
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return -1;
}

/* The lost_before of an encoded record of type t (write_record's layout: the prefix,
 * then seq, ts_mono_ns, ts_wall_ns, lost_before); -1 if it is not such a record. */
static int encoded_lost_before(const RecordType *t, const unsigned char *value, Py_ssize_t len,
                               uint64_t *lost_before)
{
    if (len < t->prefix_len || memcmp(value, t->prefix, (size_t)t->prefix_len) != 0) return -1;
    const unsigned char *p = value + t->prefix_len, *end = value + len;
    int64_t v = 0;
    for (int i = 0; i < 4; i++)
        if (take_long(&p, end, &v) < 0) return -1;
    if (v < 0) return -1;
    *lost_before = (uint64_t)v;
    return 0;
}

PyDoc_STRVAR(unsent_doc,
"unsent(records)\n\n"
"Encoded records (as drain() returned them) that will never be sent: the producer's\n"
"queue stayed full. Each is a bridge loss of its sequence. What its lost_before\n"
"reported would go with it, so that is carried too: all of it goes into the next\n"
"record's lost_before, which then reports the whole gap the records leave, right\n"
"after it. Raises (and counts nothing) if a record is not one of this session's.");

static PyObject *Encoder_unsent(Encoder *self, PyObject *arg)
{
    PyObject *list = PySequence_Fast(arg, "unsent() takes a sequence of encoded records");
    if (!list) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(list);
    PyObject **items = PySequence_Fast_ITEMS(list);
    /* Twice: checked first, so a bad record leaves every counter as it was. */
    for (int apply = 0; apply < 2; apply++) {
        for (Py_ssize_t i = 0; i < n; i++) {
            int tp;
            const char *value;
            Py_ssize_t len;
            long long ts_ms;
            if (!PyArg_ParseTuple(items[i], "iy#L", &tp, &value, &len, &ts_ms) ||
                !type_arg(self, tp)) {
                Py_DECREF(list);
                return NULL;
            }
            const RecordType *t = &self->types[tp];
            uint64_t lost_before;
            if (encoded_lost_before(t, (const unsigned char *)value, len, &lost_before) < 0) {
                PyErr_Format(PyExc_ValueError,
                             "record %zd is not an encoded record of type %d in this session",
                             i, tp);
                Py_DECREF(list);
                return NULL;
            }
            if (apply) {
                Sequence *s = &self->sequences[t->sequence];
                s->lost[STAGE_BRIDGE] += 1;
                s->pending += 1 + lost_before;
            }
        }
    }
    Py_DECREF(list);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(counters_doc,
"counters(sequence) -> (captured, last_seq, dead_lettered, pending, kernel, bridge,\n"
"producer, node)");

static PyObject *Encoder_counters(Encoder *self, PyObject *arg)
{
    long id = PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred()) return NULL;
    Sequence *s = sequence_arg(self, (int)id);
    if (!s) return NULL;
    return Py_BuildValue("(KKKKKKKK)", s->captured, s->last_seq, s->dead_lettered, s->pending,
                         s->lost[0], s->lost[1], s->lost[2], s->lost[3]);
}

/* ------------------------------------------------------------------ output */

int emit(Encoder *self, const Result *r, const unsigned char *raw, size_t raw_len,
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
    item = Py_BuildValue("(iLy#s)", r->tp_id, (long long)r->seq, (const char *)raw,
                         (Py_ssize_t)raw_len, r->reason);
    if (!item) return -1;
    int rc = PyList_Append(dead, item);
    Py_DECREF(item);
    return rc;
}

static PyObject *pack(PyObject *good, PyObject *dead)
{
    PyObject *ret = good && dead ? PyTuple_Pack(2, good, dead) : NULL;
    Py_XDECREF(good);
    Py_XDECREF(dead);
    return ret;
}

/* ------------------------------------------------------------------ USDT */

PyDoc_STRVAR(encode_one_doc,
"encode_one(raw) -> ([(tp_id, value, ts_ms)], [(tp_id, seq, raw, reason)])\n\n"
"Encode a single ring record (header included), exactly as drain() would.");

static PyObject *Encoder_encode_one(Encoder *self, PyObject *arg)
{
    Py_buffer raw;
    if (!has_session(self) || PyObject_GetBuffer(arg, &raw, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *good = PyList_New(0), *dead = PyList_New(0);
    Result r;
    int failed = !good || !dead || process_ring_record(self, raw.buf, (size_t)raw.len, &r) < 0 ||
                 emit(self, &r, raw.buf, (size_t)raw.len, good, dead) < 0;
    PyBuffer_Release(&raw);
    if (failed) {
        Py_XDECREF(good);
        Py_XDECREF(dead);
        return NULL;
    }
    return pack(good, dead);
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
    if (!has_session(self)) return NULL;
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
            if (process_ring_record(self, hdr + RINGBUF_HDR_SIZE, len, &r) < 0 ||
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

/* ------------------------------------------------------------------ IPC */

/* Python value -> Value for one field; 0 with a reason if it has the wrong type. */
static int from_python(const Field *f, PyObject *obj, Value *v, Result *r)
{
    v->p = NULL;
    v->len = 0;
    v->i = 0;
    switch (f->kind) {
    case K_I32:
    case K_U32:
    case K_I64:
        v->i = PyLong_AsLongLong(obj);
        break;
    case K_U64:
        v->i = (int64_t)PyLong_AsUnsignedLongLongMask(obj);
        break;
    case K_BOOL:
        v->i = PyObject_IsTrue(obj);
        if (v->i < 0) return -1;
        return 1;
    case K_HASH32:
    case K_PAYLOAD: {
        char *p;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(obj, &p, &len) < 0) break;
        v->p = (const unsigned char *)p;
        v->len = (size_t)len;
        return 1;
    }
    case K_CSTR: {
        if (PyBytes_Check(obj)) { /* undecodable text arrives as bytes: check_values says so */
            v->p = (const unsigned char *)PyBytes_AS_STRING(obj);
            v->len = (size_t)PyBytes_GET_SIZE(obj);
            return 1;
        }
        Py_ssize_t len;
        const char *p = PyUnicode_AsUTF8AndSize(obj, &len);
        if (!p) break;
        v->p = (const unsigned char *)p;
        v->len = (size_t)len;
        return 1;
    }
    }
    if (PyErr_Occurred()) {
        PyErr_Clear();
        reject(r, "field %s: value of the wrong type", f->name);
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(encode_values_doc,
"encode_values(tp_id, mono_ns, node_lost, values) -> ([...], [...])\n\n"
"The next record of tp_id's sequence from Python values in Avro field order (IPC\n"
"callbacks); node_lost events the node dropped before it are counted first.");

static PyObject *Encoder_encode_values(Encoder *self, PyObject *args)
{
    int tp;
    unsigned long long mono, node_lost;
    PyObject *values;
    if (!PyArg_ParseTuple(args, "iKKO", &tp, &mono, &node_lost, &values)) return NULL;
    if (!has_session(self) || !type_arg(self, tp)) return NULL;
    const RecordType *t = &self->types[tp];
    PyObject *seq = PySequence_Fast(values, "values must be a sequence");
    if (!seq) return NULL;
    if (PySequence_Fast_GET_SIZE(seq) != t->n_fields) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%zd fields expected", t->n_fields);
        return NULL;
    }
    Value v[MAX_FIELDS];
    Result r = {1, tp, -1, "", 0, 0};
    PyObject *good = PyList_New(0), *dead = PyList_New(0);
    int rc = good && dead ? 1 : -1;
    for (Py_ssize_t i = 0; rc == 1 && i < t->n_fields; i++)
        rc = from_python(&t->fields[i], PySequence_Fast_GET_ITEM(seq, i), &v[i], &r);
    if (rc == 0) { /* a wrongly typed value: count it like any rejected record */
        Sequence *s = &self->sequences[t->sequence];
        skip_lost(s, node_lost, STAGE_NODE);
        r.seq = (int64_t)++s->last_seq;
        s->captured++;
        s->dead_lettered++;
        s->lost[STAGE_BRIDGE]++;
        s->pending++;
        rc = 1;
    } else if (rc == 1) {
        rc = encode_next(self, tp, mono, node_lost, v, &r) < 0 ? -1 : 1;
    }
    if (rc == 1) rc = emit(self, &r, (const unsigned char *)"", 0, good, dead) < 0 ? -1 : 1;
    Py_DECREF(seq);
    if (rc < 0) {
        Py_XDECREF(good);
        Py_XDECREF(dead);
        return NULL;
    }
    return pack(good, dead);
}

PyDoc_STRVAR(encode_body_doc,
"encode_body(tp_id, mono_ns, node_lost, body) -> (tp_id, value, ts_ms)\n\n"
"The next record of a record type whose fields Python encoded itself (IPC-only events:\n"
"body = the Avro bytes of every field after the envelope).");

static PyObject *Encoder_encode_body(Encoder *self, PyObject *args)
{
    int tp;
    unsigned long long mono, node_lost;
    Py_buffer body;
    if (!has_session(self)) return NULL;
    if (!PyArg_ParseTuple(args, "iKKy*", &tp, &mono, &node_lost, &body)) return NULL;
    PyObject *ret = NULL;
    Result r = {1, tp, -1, "", 0, 0};
    if (type_arg(self, tp) && self->types[tp].n_fields == 0 &&
        encode_next(self, tp, mono, node_lost, NULL, &r) == 0 &&
        ensure_out(self, r.len + (size_t)body.len) == 0) {
        memcpy(self->out + r.len, body.buf, (size_t)body.len);
        ret = Py_BuildValue("(iy#L)", tp, (const char *)self->out,
                            (Py_ssize_t)(r.len + (size_t)body.len), (long long)r.ts_ms);
    } else if (!PyErr_Occurred()) {
        PyErr_Format(PyExc_ValueError, "record type %d takes fields, not a body", tp);
    }
    PyBuffer_Release(&body);
    return ret;
}

PyDoc_STRVAR(reject_next_doc,
"reject_next(tp_id, node_lost) -> seq\n\n"
"Count the next event of tp_id's sequence as rejected in the bridge (Python found it\n"
"malformed: an unparsable transaction, a wrong-sized hash); return the seq it used.");

static PyObject *Encoder_reject_next(Encoder *self, PyObject *args)
{
    int tp;
    unsigned long long node_lost;
    if (!PyArg_ParseTuple(args, "iK", &tp, &node_lost)) return NULL;
    if (!has_session(self) || !type_arg(self, tp)) return NULL;
    Sequence *s = &self->sequences[self->types[tp].sequence];
    skip_lost(s, node_lost, STAGE_NODE);
    uint64_t seq = ++s->last_seq;
    s->captured++;
    s->dead_lettered++;
    s->lost[STAGE_BRIDGE]++;
    s->pending++;
    return PyLong_FromUnsignedLongLong(seq);
}

/* ------------------------------------------------------------------ privacy */

PyDoc_STRVAR(set_redaction_doc,
"set_redaction(mode, key, keep_port, ipv4_bits, ipv6_bits, withheld_types)\n\n"
"Redact every address field from now on (mode 1: keyed hash with key, 2: network\n"
"prefix; 0: off), and withhold the payload of the message types in withheld_types\n"
"(their bytes carry addresses). See redact.c for the forms written.");

static PyObject *Encoder_set_redaction(Encoder *self, PyObject *args)
{
    int mode, keep_port, v4, v6;
    Py_buffer key;
    PyObject *types;
    if (!PyArg_ParseTuple(args, "iy*piiO", &mode, &key, &keep_port, &v4, &v6, &types)) return NULL;
    PyObject *seq = PySequence_Fast(types, "withheld_types must be a sequence");
    int bad = !seq || mode < REDACT_NONE || mode > REDACT_TRUNCATE || v4 < 0 || v4 > 32 ||
              v6 < 0 || v6 > 128 || (mode == REDACT_HASH && key.len == 0) ||
              PySequence_Fast_GET_SIZE(seq) > MAX_WITHHELD_TYPES;
    if (bad) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "bad redaction: mode 0-2, a key for mode 1, "
                                              "ipv4_bits 0-32, ipv6_bits 0-128, at most 8 types");
        Py_XDECREF(seq);
        PyBuffer_Release(&key);
        return NULL;
    }
    Redaction *red = &self->redaction;
    for (int i = 0; i < red->n_types; i++) PyMem_Free(red->types[i]);
    memset(red, 0, sizeof(*red));
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        Py_ssize_t len;
        const char *name = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(seq, i), &len);
        char *copy = name ? PyMem_Malloc((size_t)len + 1) : NULL;
        if (!copy) {
            if (!PyErr_Occurred()) PyErr_NoMemory();
            Py_DECREF(seq);
            PyBuffer_Release(&key);
            return NULL;
        }
        memcpy(copy, name, (size_t)len + 1);
        red->types[red->n_types++] = copy;
    }
    Py_DECREF(seq);
    redaction_set_key(red, key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    red->keep_port = keep_port;
    red->v4_bits = v4;
    red->v6_bits = v6;
    red->mode = mode; /* last: a half-set redaction is never in use */
    Py_RETURN_NONE;
}

PyDoc_STRVAR(redact_address_doc,
"redact_address(address) -> str\n\n"
"What an address field carries under the current redaction (the address itself when\n"
"it is off); for addresses in records that Python encodes (IPC snapshots).");

static PyObject *Encoder_redact_address(Encoder *self, PyObject *arg)
{
    Py_ssize_t len;
    const char *a = PyUnicode_AsUTF8AndSize(arg, &len);
    if (!a) return NULL;
    if (!self->redaction.mode) return PyUnicode_FromStringAndSize(a, len);
    char out[REDACTED_MAX];
    size_t n = redact_address(&self->redaction, (const unsigned char *)a, (size_t)len, out);
    return PyUnicode_FromStringAndSize(out, (Py_ssize_t)n);
}

static PyObject *Encoder_redaction_mode(Encoder *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->redaction.mode);
}

static PyObject *Encoder_configure_capnp_list(Encoder *self, PyObject *args)
{
    return capnp_configure(self, args);
}

static PyObject *Encoder_encode_capnp_list(Encoder *self, PyObject *args)
{
    return capnp_encode(self, args);
}

PyDoc_STRVAR(configure_capnp_list_doc,
"configure_capnp_list(id, root_pointer, selector_bit, tp_true, tp_false, ts_word,\n"
"                     ts_scale_ns, sources)\n\n"
"How to read a List(Struct) from a Cap'n Proto message: the list is pointer\n"
"root_pointer of the root struct; a bool at selector_bit picks the record type; an\n"
"Int64 at data word ts_word times ts_scale_ns is the event time; sources gives, per\n"
"record field, (capnp kind, slot offset or pointer index).");

PyDoc_STRVAR(encode_capnp_list_doc,
"encode_capnp_list(id, message, dropped, receipt_mono_ns, expected) -> ([...], [...])\n\n"
"Encode every element of a serialised message's list; `dropped` events the node\n"
"reports it dropped before this batch are counted first. `expected` is the list\n"
"length pycapnp reported: if the message cannot be read, or holds a different count,\n"
"that many events are counted lost (one dead letter stands for them).");

static PyMethodDef Encoder_methods[] = {
    {"configure_sequence", (PyCFunction)Encoder_configure_sequence, METH_VARARGS,
     configure_sequence_doc},
    {"configure_stream", (PyCFunction)Encoder_configure_stream, METH_VARARGS, configure_stream_doc},
    {"set_session", (PyCFunction)Encoder_set_session, METH_VARARGS, set_session_doc},
    {"set_wall_offset", (PyCFunction)Encoder_set_wall_offset, METH_O, "set_wall_offset(ns)"},
    {"add_loss", (PyCFunction)Encoder_add_loss, METH_VARARGS, add_loss_doc},
    {"unsent", (PyCFunction)Encoder_unsent, METH_O, unsent_doc},
    {"counters", (PyCFunction)Encoder_counters, METH_O, counters_doc},
    {"encode_one", (PyCFunction)Encoder_encode_one, METH_O, encode_one_doc},
    {"drain", (PyCFunction)Encoder_drain, METH_VARARGS, drain_doc},
    {"encode_values", (PyCFunction)Encoder_encode_values, METH_VARARGS, encode_values_doc},
    {"encode_body", (PyCFunction)Encoder_encode_body, METH_VARARGS, encode_body_doc},
    {"reject_next", (PyCFunction)Encoder_reject_next, METH_VARARGS, reject_next_doc},
    {"set_redaction", (PyCFunction)Encoder_set_redaction, METH_VARARGS, set_redaction_doc},
    {"redact_address", (PyCFunction)Encoder_redact_address, METH_O, redact_address_doc},
    {"redaction_mode", (PyCFunction)Encoder_redaction_mode, METH_NOARGS,
     "redaction_mode() -> 0 (off), 1 (hash) or 2 (truncate)"},
    {"configure_capnp_list", (PyCFunction)Encoder_configure_capnp_list, METH_VARARGS,
     configure_capnp_list_doc},
    {"encode_capnp_list", (PyCFunction)Encoder_encode_capnp_list, METH_VARARGS,
     encode_capnp_list_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bridge.codec._native.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Events -> Avro records with per-sequence loss counters (see native.h).",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_native",
    .m_doc = "tracebridge hot path (see native.h).",
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
