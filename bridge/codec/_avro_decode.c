/* bridge.codec._avro_decode: Avro binary -> Python values, table-driven, in C.
 *
 * Why C: replaying and auditing a million records must decode well over 200k
 * records/s in one process, and fastavro's schemaless_reader costs ~5.5 us/record
 * (../shared/reference/performance-limits.md). This module walks a small tree of
 * nodes compiled once per committed schema (bridge/codec/fast_decode.py builds the
 * tree from the .avsc files) and builds the same dicts, lists, str, bytes, int and
 * bool objects fastavro builds.
 *
 * It is an accelerator, never an authority: whenever a value is not exactly what the
 * tree describes (unknown fingerprint, bad union or enum index, a varint past 64 bits,
 * a boolean byte other than 0/1, invalid UTF-8, trailing bytes, ...) decode() returns
 * None and the caller decodes the value with fastavro, which then either returns its
 * own result or raises its own error. So a record decodes to fastavro's output
 * whichever path takes it; tests/unit/codec/test_fast_decode.py checks that with
 * Hypothesis over every committed schema.
 *
 * Tree spec (nested tuples, built by Python):
 *   "null" | "boolean" | "int" | "long" | "float" | "double" | "bytes" | "string"
 *   ("fixed", size)  ("enum", (symbol, ...))  ("record", ((name, node), ...))
 *   ("array", node)  ("map", node)  ("union", (node, ...))
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_SCHEMAS 1024
#define MAX_DEPTH 64
#define SO_HEADER 10 /* C3 01 + 8-byte CRC-64-AVRO fingerprint */
/* Items of zero encoded size (null, empty record) cost nothing on the wire, so a
 * hostile block count could make a huge list from a few bytes: cap those blocks. */
#define MAX_ZERO_SIZE_ITEMS (1 << 20)

enum op {
    OP_NULL, OP_BOOLEAN, OP_INT, OP_LONG, OP_FLOAT, OP_DOUBLE, OP_BYTES, OP_STRING,
    OP_FIXED, OP_ENUM, OP_RECORD, OP_ARRAY, OP_MAP, OP_UNION
};

typedef struct Node {
    int op;
    Py_ssize_t n;           /* FIXED: size; ENUM: symbols; RECORD: fields; UNION: branches */
    Py_ssize_t min_size;    /* fewest bytes one value can take on the wire */
    struct Node **children; /* RECORD fields, UNION branches; ARRAY/MAP: children[0] */
    PyObject **names;       /* RECORD: interned field names; ENUM: interned symbols */
} Node;

typedef struct {
    unsigned char fingerprint[8];
    Node *root;
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *entries;
    Py_ssize_t n_entries;
    Py_ssize_t last; /* index of the last fingerprint hit: consecutive records often share it */
} Decoder;

/* Raised internally for data the tree does not describe; never escapes decode(). */
static PyObject *NotHandled;

/* ---------------------------------------------------------------- building the tree */

static void free_node(Node *node)
{
    if (!node) return;
    if (node->children) {
        Py_ssize_t count = (node->op == OP_ARRAY || node->op == OP_MAP) ? 1 : node->n;
        for (Py_ssize_t i = 0; i < count; i++) free_node(node->children[i]);
        PyMem_Free(node->children);
    }
    if (node->names) {
        for (Py_ssize_t i = 0; i < node->n; i++) Py_XDECREF(node->names[i]);
        PyMem_Free(node->names);
    }
    PyMem_Free(node);
}

static Node *new_node(int op)
{
    Node *node = PyMem_Calloc(1, sizeof(Node));
    if (!node) {
        PyErr_NoMemory();
        return NULL;
    }
    node->op = op;
    return node;
}

static const struct { const char *name; int op; Py_ssize_t min_size; } PRIMITIVES[] = {
    {"null", OP_NULL, 0}, {"boolean", OP_BOOLEAN, 1}, {"int", OP_INT, 1},
    {"long", OP_LONG, 1}, {"float", OP_FLOAT, 4}, {"double", OP_DOUBLE, 8},
    {"bytes", OP_BYTES, 1}, {"string", OP_STRING, 1},
};

static PyObject *interned(PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "names and symbols must be str");
        return NULL;
    }
    Py_INCREF(text);
    PyUnicode_InternInPlace(&text);
    return text;
}

static Node *build(PyObject *spec, int depth);

static Node *build_children(Node *node, PyObject *items, int depth, int named)
{
    if (!PyTuple_Check(items)) {
        PyErr_SetString(PyExc_TypeError, "expected a tuple of children");
        free_node(node);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    node->n = n;
    node->children = PyMem_Calloc(n ? n : 1, sizeof(Node *));
    if (named) node->names = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    if (!node->children || (named && !node->names)) {
        free_node(node);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        PyObject *child_spec = item;
        if (named) {
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "record fields must be (name, node) pairs");
                free_node(node);
                return NULL;
            }
            node->names[i] = interned(PyTuple_GET_ITEM(item, 0));
            if (!node->names[i]) {
                free_node(node);
                return NULL;
            }
            child_spec = PyTuple_GET_ITEM(item, 1);
        }
        node->children[i] = build(child_spec, depth + 1);
        if (!node->children[i]) {
            free_node(node);
            return NULL;
        }
    }
    return node;
}

static Node *build(PyObject *spec, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "schema nested too deeply");
        return NULL;
    }
    if (PyUnicode_Check(spec)) {
        for (size_t i = 0; i < sizeof(PRIMITIVES) / sizeof(PRIMITIVES[0]); i++) {
            if (PyUnicode_CompareWithASCIIString(spec, PRIMITIVES[i].name) == 0) {
                Node *node = new_node(PRIMITIVES[i].op);
                if (node) node->min_size = PRIMITIVES[i].min_size;
                return node;
            }
        }
        PyErr_Format(PyExc_ValueError, "unsupported primitive %R", spec);
        return NULL;
    }
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 2 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(spec, 0))) {
        PyErr_Format(PyExc_TypeError, "bad node spec %R", spec);
        return NULL;
    }
    PyObject *kind = PyTuple_GET_ITEM(spec, 0);
    PyObject *arg = PyTuple_GET_ITEM(spec, 1);
    Node *node;
    if (PyUnicode_CompareWithASCIIString(kind, "fixed") == 0) {
        Py_ssize_t size = PyLong_AsSsize_t(arg);
        if (size < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "fixed size must be >= 0");
            return NULL;
        }
        node = new_node(OP_FIXED);
        if (node) node->n = node->min_size = size;
        return node;
    }
    if (PyUnicode_CompareWithASCIIString(kind, "enum") == 0) {
        if (!PyTuple_Check(arg) || PyTuple_GET_SIZE(arg) == 0) {
            PyErr_SetString(PyExc_TypeError, "enum symbols must be a non-empty tuple");
            return NULL;
        }
        node = new_node(OP_ENUM);
        if (!node) return NULL;
        node->min_size = 1;
        node->n = PyTuple_GET_SIZE(arg);
        node->names = PyMem_Calloc(node->n, sizeof(PyObject *));
        if (!node->names) {
            free_node(node);
            PyErr_NoMemory();
            return NULL;
        }
        for (Py_ssize_t i = 0; i < node->n; i++) {
            node->names[i] = interned(PyTuple_GET_ITEM(arg, i));
            if (!node->names[i]) {
                free_node(node);
                return NULL;
            }
        }
        return node;
    }
    if (PyUnicode_CompareWithASCIIString(kind, "record") == 0) {
        node = new_node(OP_RECORD);
        if (!node || !build_children(node, arg, depth, 1)) return NULL;
        for (Py_ssize_t i = 0; i < node->n; i++) node->min_size += node->children[i]->min_size;
        return node;
    }
    if (PyUnicode_CompareWithASCIIString(kind, "union") == 0) {
        node = new_node(OP_UNION);
        if (!node || !build_children(node, arg, depth, 0)) return NULL;
        if (node->n == 0) {
            free_node(node);
            PyErr_SetString(PyExc_ValueError, "empty union");
            return NULL;
        }
        node->min_size = 1;
        return node;
    }
    int is_array = PyUnicode_CompareWithASCIIString(kind, "array") == 0;
    if (is_array || PyUnicode_CompareWithASCIIString(kind, "map") == 0) {
        node = new_node(is_array ? OP_ARRAY : OP_MAP);
        if (!node) return NULL;
        node->min_size = 1;
        node->children = PyMem_Calloc(1, sizeof(Node *));
        if (!node->children) {
            free_node(node);
            PyErr_NoMemory();
            return NULL;
        }
        node->children[0] = build(arg, depth + 1);
        if (!node->children[0]) {
            free_node(node);
            return NULL;
        }
        return node;
    }
    PyErr_Format(PyExc_ValueError, "unsupported node kind %R", kind);
    return NULL;
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

static PyObject *not_handled(const char *why)
{
    PyErr_SetString(NotHandled, why);
    return NULL;
}

/* Zigzag varint, at most 10 bytes and 64 bits (fastavro decides anything longer). */
static inline int read_long(Cursor *c, int64_t *out)
{
    uint64_t acc = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end) return -1;
        unsigned char b = *c->p++;
        if (shift == 63 && (b & 0xFE)) return -1;
        acc |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)((acc >> 1) ^ (0 - (acc & 1)));
            return 0;
        }
    }
    return -1;
}

static inline int read_length(Cursor *c, Py_ssize_t *out)
{
    int64_t len;
    if (read_long(c, &len) < 0 || len < 0 || len > (int64_t)(c->end - c->p)) return -1;
    *out = (Py_ssize_t)len;
    return 0;
}

static PyObject *decode_node(const Node *node, Cursor *c);

/* Presizing saves the resizes of a 20-field record; the call left the C API in 3.13. */
#if PY_VERSION_HEX < 0x030D0000
#define NEW_DICT(n) _PyDict_NewPresized(n)
#else
#define NEW_DICT(n) PyDict_New()
#endif

static PyObject *decode_record(const Node *node, Cursor *c, Py_ssize_t limit)
{
    PyObject *dict = NEW_DICT(limit);
    if (!dict) return NULL;
    for (Py_ssize_t i = 0; i < limit; i++) {
        PyObject *value = decode_node(node->children[i], c);
        if (!value || PyDict_SetItem(dict, node->names[i], value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(value);
    }
    return dict;
}

/* Next block count of an array or map; 0 ends it. A negative count is followed by the
 * block's size in bytes, which is not needed here. */
static int block_count(const Node *item, Cursor *c, int64_t *count)
{
    if (read_long(c, count) < 0) return -1;
    if (*count < 0) {
        int64_t ignored;
        if (*count == INT64_MIN || read_long(c, &ignored) < 0) return -1;
        *count = -*count;
    }
    int64_t remaining = (int64_t)(c->end - c->p);
    if (item->min_size > 0 ? *count > remaining / item->min_size : *count > MAX_ZERO_SIZE_ITEMS)
        return -1;
    return 0;
}

static PyObject *decode_array(const Node *node, Cursor *c)
{
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    for (;;) {
        int64_t count;
        if (block_count(node->children[0], c, &count) < 0) {
            Py_DECREF(list);
            return not_handled("bad array block");
        }
        if (count == 0) return list;
        for (int64_t i = 0; i < count; i++) {
            PyObject *item = decode_node(node->children[0], c);
            if (!item || PyList_Append(list, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(item);
        }
    }
}

static PyObject *decode_map(const Node *node, Cursor *c)
{
    PyObject *dict = PyDict_New();
    if (!dict) return NULL;
    for (;;) {
        int64_t count;
        /* a map entry is a string key (>= 1 byte) plus the value */
        if (block_count(node->children[0], c, &count) < 0 || count > (int64_t)(c->end - c->p)) {
            Py_DECREF(dict);
            return not_handled("bad map block");
        }
        if (count == 0) return dict;
        for (int64_t i = 0; i < count; i++) {
            Py_ssize_t len;
            if (read_length(c, &len) < 0) {
                Py_DECREF(dict);
                return not_handled("bad map key length");
            }
            PyObject *key = PyUnicode_DecodeUTF8((const char *)c->p, len, "strict");
            c->p += len;
            PyObject *value = key ? decode_node(node->children[0], c) : NULL;
            if (!value || PyDict_SetItem(dict, key, value) < 0) {
                Py_XDECREF(key);
                Py_XDECREF(value);
                Py_DECREF(dict);
                return NULL;
            }
            Py_DECREF(key);
            Py_DECREF(value);
        }
    }
}

static PyObject *decode_node(const Node *node, Cursor *c)
{
    int64_t v;
    Py_ssize_t len;
    switch (node->op) {
    case OP_NULL:
        Py_RETURN_NONE;
    case OP_BOOLEAN:
        if (c->p >= c->end || *c->p > 1) return not_handled("bad boolean");
        return PyBool_FromLong(*c->p++);
    case OP_INT:
    case OP_LONG:
        if (read_long(c, &v) < 0) return not_handled("bad varint");
        return PyLong_FromLongLong(v);
    case OP_FLOAT: {
        float f;
        if (c->end - c->p < 4) return not_handled("short float");
        memcpy(&f, c->p, 4); /* Avro floats are little-endian, as is every target here */
        c->p += 4;
        return PyFloat_FromDouble((double)f);
    }
    case OP_DOUBLE: {
        double d;
        if (c->end - c->p < 8) return not_handled("short double");
        memcpy(&d, c->p, 8);
        c->p += 8;
        return PyFloat_FromDouble(d);
    }
    case OP_BYTES:
        if (read_length(c, &len) < 0) return not_handled("bad bytes length");
        c->p += len;
        return PyBytes_FromStringAndSize((const char *)c->p - len, len);
    case OP_STRING: {
        if (read_length(c, &len) < 0) return not_handled("bad string length");
        const char *s = (const char *)c->p;
        c->p += len;
        return PyUnicode_DecodeUTF8(s, len, "strict");
    }
    case OP_FIXED:
        if (c->end - c->p < node->n) return not_handled("short fixed");
        c->p += node->n;
        return PyBytes_FromStringAndSize((const char *)c->p - node->n, node->n);
    case OP_ENUM:
        if (read_long(c, &v) < 0 || v < 0 || v >= node->n) return not_handled("bad enum index");
        Py_INCREF(node->names[v]);
        return node->names[v];
    case OP_RECORD:
        return decode_record(node, c, node->n);
    case OP_ARRAY:
        return decode_array(node, c);
    case OP_MAP:
        return decode_map(node, c);
    case OP_UNION:
        if (read_long(c, &v) < 0 || v < 0 || v >= node->n) return not_handled("bad union index");
        return decode_node(node->children[v], c);
    }
    return not_handled("unknown op");
}

/* NULL with no exception: not handled here (the caller falls back to fastavro). */
static PyObject *finish(PyObject *value)
{
    if (value) return value;
    if (PyErr_ExceptionMatches(NotHandled) || PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return NULL; /* MemoryError and the like: a real error */
}

static PyObject *decode_root(const Node *root, const unsigned char *p, const unsigned char *end,
                             Py_ssize_t fields)
{
    Cursor c = {p, end};
    PyObject *value;
    if (fields >= 0) {
        if (root->op != OP_RECORD) return not_handled("partial decode needs a record");
        value = decode_record(root, &c, fields < root->n ? fields : root->n);
    } else {
        value = decode_node(root, &c);
        if (value && c.p != c.end) {
            Py_DECREF(value);
            return not_handled("trailing bytes");
        }
    }
    return value;
}

/* ---------------------------------------------------------------- the Decoder type */

static void Decoder_dealloc(Decoder *self)
{
    for (Py_ssize_t i = 0; i < self->n_entries; i++) free_node(self->entries[i].root);
    PyMem_Free(self->entries);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(add_doc,
"add(fingerprint, tree) -> index\n\n"
"Compile one schema's tree; its single-object values carry the 8-byte fingerprint.");

static PyObject *Decoder_add(Decoder *self, PyObject *args)
{
    const char *fp;
    Py_ssize_t fp_len;
    PyObject *tree;
    if (!PyArg_ParseTuple(args, "y#O", &fp, &fp_len, &tree)) return NULL;
    if (fp_len != 8) {
        PyErr_SetString(PyExc_ValueError, "fingerprint must be 8 bytes");
        return NULL;
    }
    if (self->n_entries >= MAX_SCHEMAS) {
        PyErr_SetString(PyExc_ValueError, "too many schemas");
        return NULL;
    }
    Node *root = build(tree, 0);
    if (!root) return NULL;
    Entry *grown = PyMem_Realloc(self->entries, (self->n_entries + 1) * sizeof(Entry));
    if (!grown) {
        free_node(root);
        return PyErr_NoMemory();
    }
    self->entries = grown;
    memcpy(grown[self->n_entries].fingerprint, fp, 8);
    grown[self->n_entries].root = root;
    return PyLong_FromSsize_t(self->n_entries++);
}

static Py_ssize_t lookup(Decoder *self, const unsigned char *fp)
{
    if (self->last < self->n_entries && memcmp(self->entries[self->last].fingerprint, fp, 8) == 0)
        return self->last;
    for (Py_ssize_t i = 0; i < self->n_entries; i++) {
        if (memcmp(self->entries[i].fingerprint, fp, 8) == 0) {
            self->last = i;
            return i;
        }
    }
    return -1;
}

static int get_view(PyObject *obj, Py_buffer *view)
{
    return PyObject_GetBuffer(obj, view, PyBUF_SIMPLE);
}

PyDoc_STRVAR(decode_doc,
"decode(value, fields=-1) -> (index, value) | None\n\n"
"Decode one Avro single-object value. None when the value is not single-object\n"
"encoded, its fingerprint is unknown, or its body is not exactly what the schema\n"
"describes: decode it with fastavro then. With fields >= 0, only the first fields\n"
"of the top-level record are decoded (e.g. 1 for the envelope alone).");

static PyObject *Decoder_decode(Decoder *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "decode(value, fields=-1)");
        return NULL;
    }
    Py_ssize_t fields = -1;
    if (nargs == 2 && (fields = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (get_view(args[0], &view) < 0) return NULL;
    const unsigned char *p = view.buf;
    PyObject *result = NULL;
    if (view.len < SO_HEADER || p[0] != 0xC3 || p[1] != 0x01) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t index = lookup(self, p + 2);
    if (index < 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *value = finish(decode_root(self->entries[index].root, p + SO_HEADER, p + view.len, fields));
    if (!value || value == Py_None) {
        result = value;
        goto done;
    }
    result = PyTuple_New(2);
    if (!result) {
        Py_DECREF(value);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, PyLong_FromSsize_t(index));
    PyTuple_SET_ITEM(result, 1, value);
done:
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(decode_body_doc,
"decode_body(index, value, offset, fields=-1) -> value | None\n\n"
"Decode the Avro body that starts at offset with schema index (any framing: e.g.\n"
"a registry's 5-byte prefix). None when it is not exactly what the schema describes.");

static PyObject *Decoder_decode_body(Decoder *self, PyObject *args)
{
    Py_ssize_t index, offset, fields = -1;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "ny*n|n", &index, &view, &offset, &fields)) return NULL;
    PyObject *result;
    if (index < 0 || index >= self->n_entries) {
        PyErr_SetString(PyExc_IndexError, "no such schema index");
        result = NULL;
    } else if (offset < 0 || offset > view.len) {
        result = Py_NewRef(Py_None);
    } else {
        const unsigned char *p = view.buf;
        result = finish(decode_root(self->entries[index].root, p + offset, p + view.len, fields));
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef Decoder_methods[] = {
    {"add", (PyCFunction)Decoder_add, METH_VARARGS, add_doc},
    {"decode", (PyCFunction)(void (*)(void))Decoder_decode, METH_FASTCALL, decode_doc},
    {"decode_body", (PyCFunction)Decoder_decode_body, METH_VARARGS, decode_body_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bridge.codec._avro_decode.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Avro single-object values -> Python values, for a set of compiled schemas.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_methods = Decoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bridge.codec._avro_decode",
    .m_doc = "Table-driven Avro binary decoder (an accelerator for fastavro's output).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__avro_decode(void)
{
    if (PyType_Ready(&DecoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    NotHandled = PyErr_NewException("bridge.codec._avro_decode.NotHandled", PyExc_ValueError, NULL);
    if (!NotHandled || PyModule_AddObjectRef(m, "NotHandled", NotHandled) < 0 ||
        PyModule_AddObjectRef(m, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
