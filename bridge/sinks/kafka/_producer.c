/* The event records' producer: librdkafka driven from C, no Python per record.
 *
 * Why: with the records already encoded in C, the per-record Python left on the hot
 * path was confluent-kafka's produce() (argument parsing, and converting the route's
 * four headers into librdkafka's on every call) and one Python delivery callback per
 * acknowledged record: about 1.4 of the bridge's 2.3 us per event. Here a drained batch
 * is produced in one call, each record's headers are a C copy of its route's prebuilt
 * list, and delivery reports only count, per stream, in C.
 *
 * Which librdkafka: the one confluent-kafka already loaded into this process (its
 * wheel bundles it), found by path and opened with dlopen, so the whole bridge runs
 * one librdkafka version. This file is compiled against Debian's rdkafka.h (2.0.2)
 * for the types only; every function is looked up at load time, and librdkafka's ABI
 * only grows, so the newer library serves these older declarations.
 *
 * Callbacks never call Python: librdkafka serves delivery reports, errors and (with
 * log.queue) log lines from rd_kafka_poll(), which the methods below call with the
 * GIL released when they may block. Reports are counted with atomics; errors, log
 * lines and failures are queued under a mutex and handed to Python callables after
 * the poll, with the GIL held again.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define MAX_STREAMS 256            /* tp_id range of the native encoder */
#define BRIDGE_STREAM MAX_STREAMS  /* the bridge's own records: heartbeats, dead letters */
#define MAX_BOUNDS 32
#define LOG_SLOTS 128
#define ERROR_SLOTS 32
#define BRIDGE_FAILURE_SLOTS 32
#define TEXT 400

/* ------------------------------------------------------------------ librdkafka */

#define API(name) __typeof__(&rd_kafka_##name) name
static struct {
    API(version);
    API(version_str);
    API(conf_new);
    API(conf_set);
    API(conf_destroy);
    API(conf_set_dr_msg_cb);
    API(conf_set_log_cb);
    API(conf_set_error_cb);
    API(conf_set_opaque);
    API(new);
    API(destroy);
    API(name);
    API(set_log_queue);
    API(topic_new);
    API(topic_destroy);
    API(topic_name);
    API(producev);
    API(poll);
    API(flush);
    API(outq_len);
    API(purge);
    API(headers_new);
    API(header_add);
    API(headers_copy);
    API(headers_destroy);
    API(err2str);
    API(err2name);
    API(message_timestamp);
    API(message_status);
    API(fatal_error);
    API(opaque);
} rk;
#undef API
static int rk_loaded;

#define LOOKUP(name)                                                                    \
    do {                                                                                \
        *(void **)&rk.name = dlsym(handle, "rd_kafka_" #name);                          \
        if (rk.name == NULL) {                                                          \
            PyErr_Format(PyExc_RuntimeError, "%s has no rd_kafka_%s", path, #name);     \
            return NULL;                                                                \
        }                                                                               \
    } while (0)

static PyObject *load_library(PyObject *module, PyObject *arg) {
    (void)module;
    const char *path = PyUnicode_AsUTF8(arg);
    if (path == NULL) return NULL;
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        PyErr_Format(PyExc_RuntimeError, "cannot open librdkafka: %s", dlerror());
        return NULL;
    }
    LOOKUP(version);
    LOOKUP(version_str);
    LOOKUP(conf_new);
    LOOKUP(conf_set);
    LOOKUP(conf_destroy);
    LOOKUP(conf_set_dr_msg_cb);
    LOOKUP(conf_set_log_cb);
    LOOKUP(conf_set_error_cb);
    LOOKUP(conf_set_opaque);
    LOOKUP(new);
    LOOKUP(destroy);
    LOOKUP(name);
    LOOKUP(set_log_queue);
    LOOKUP(topic_new);
    LOOKUP(topic_destroy);
    LOOKUP(topic_name);
    LOOKUP(producev);
    LOOKUP(poll);
    LOOKUP(flush);
    LOOKUP(outq_len);
    LOOKUP(purge);
    LOOKUP(headers_new);
    LOOKUP(header_add);
    LOOKUP(headers_copy);
    LOOKUP(headers_destroy);
    LOOKUP(err2str);
    LOOKUP(err2name);
    LOOKUP(message_timestamp);
    LOOKUP(message_status);
    LOOKUP(fatal_error);
    LOOKUP(opaque);
    if (rk.version() < RD_KAFKA_VERSION) {
        PyErr_Format(PyExc_RuntimeError, "%s is librdkafka %s; at least 2.0.2 is needed", path,
                     rk.version_str());
        return NULL;
    }
    rk_loaded = 1;
    return PyUnicode_FromString(rk.version_str());
}

/* ------------------------------------------------------------------ the producer */

typedef struct {
    rd_kafka_topic_t *topic;
    rd_kafka_headers_t *headers; /* NULL: records go without headers */
} Route;

typedef struct {
    int level;
    char facility[32];
    char text[TEXT];
} LogLine;

typedef struct {
    int code;
    int fatal;
    char reason[TEXT];
} ClientError;

typedef struct {
    char topic[200];
    char error[200];
} BridgeFailure;

typedef struct {
    LogLine logs[LOG_SLOTS];
    int n_logs;
    uint64_t logs_dropped;
    ClientError errors[ERROR_SLOTS];
    int n_errors;
    BridgeFailure bridge_failures[BRIDGE_FAILURE_SLOTS];
    int n_bridge_failures;
    uint64_t bridge_failures_unlisted;
} Pending;

typedef struct {
    PyObject_HEAD
    rd_kafka_t *client;
    Route routes[MAX_STREAMS];
    uint64_t produced[MAX_STREAMS];
    uint64_t acked[MAX_STREAMS];
    uint64_t failed[MAX_STREAMS];   /* failed, and librdkafka knows Kafka has not written it */
    uint64_t in_doubt[MAX_STREAMS]; /* failed after it was sent: Kafka may have written it */
    uint64_t failures_unreported[MAX_STREAMS]; /* failed, not yet handed to on_failures */
    uint64_t doubts_unreported[MAX_STREAMS];   /* in doubt, not yet handed to on_failures */
    int last_failure[MAX_STREAMS];             /* its error code */
    int any_failure;
    int latency_on;
    int n_bounds;
    int64_t bounds_ms[MAX_BOUNDS];
    uint64_t latency_counts[MAX_BOUNDS + 1];
    uint64_t latency_sum_ms;
    pthread_mutex_t lock; /* guards pending */
    Pending *pending;
    int anything_pending;
    PyObject *on_log;            /* (level, facility, text) */
    PyObject *on_error;          /* (code, reason, fatal) */
    PyObject *on_failures;       /* ([(tp_id, count, error, in_doubt), ...]) */
    PyObject *on_bridge_failure; /* (topic, error) */
} Producer;

static inline void add(uint64_t *counter, uint64_t n) {
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static inline uint64_t load(const uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

static void copy_text(char *to, size_t size, const char *from) {
    snprintf(to, size, "%s", from ? from : "");
}

static void on_delivery(rd_kafka_t *client, const rd_kafka_message_t *message, void *opaque) {
    (void)client;
    Producer *self = opaque;
    uintptr_t stream = (uintptr_t)message->_private;
    if (stream > BRIDGE_STREAM) return; /* not ours: cannot happen */
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (stream == BRIDGE_STREAM) return;
        add(&self->acked[stream], 1);
        if (self->latency_on) {
            rd_kafka_timestamp_type_t type;
            int64_t event_ms = rk.message_timestamp(message, &type);
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            int64_t latency = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - event_ms;
            if (latency < 0) latency = 0; /* the wall clock stepped back */
            int bucket = 0;
            while (bucket < self->n_bounds && latency > self->bounds_ms[bucket]) bucket++;
            add(&self->latency_counts[bucket], 1);
            add(&self->latency_sum_ms, (uint64_t)latency);
        }
        return;
    }
    if (stream < MAX_STREAMS) {
        /* A record that timed out after it was sent may have been written all the same
         * (the broker was slow, not gone): it is not a loss until a reader finds its
         * seq missing, so it is counted apart and the audit settles it. */
        if (rk.message_status(message) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED) {
            add(&self->in_doubt[stream], 1);
            add(&self->doubts_unreported[stream], 1);
        } else {
            add(&self->failed[stream], 1);
            add(&self->failures_unreported[stream], 1);
        }
        __atomic_store_n(&self->last_failure[stream], (int)message->err, __ATOMIC_RELAXED);
        __atomic_store_n(&self->any_failure, 1, __ATOMIC_RELEASE);
        return;
    }
    pthread_mutex_lock(&self->lock);
    Pending *p = self->pending;
    if (p->n_bridge_failures < BRIDGE_FAILURE_SLOTS) {
        BridgeFailure *f = &p->bridge_failures[p->n_bridge_failures++];
        copy_text(f->topic, sizeof f->topic, rk.topic_name(message->rkt));
        copy_text(f->error, sizeof f->error, rk.err2str(message->err));
    } else {
        p->bridge_failures_unlisted++;
    }
    self->anything_pending = 1;
    pthread_mutex_unlock(&self->lock);
}

static void on_log(const rd_kafka_t *client, int level, const char *facility, const char *text) {
    Producer *self = rk.opaque(client);
    if (self == NULL) return;
    pthread_mutex_lock(&self->lock);
    Pending *p = self->pending;
    if (p->n_logs < LOG_SLOTS) {
        LogLine *line = &p->logs[p->n_logs++];
        line->level = level;
        copy_text(line->facility, sizeof line->facility, facility);
        copy_text(line->text, sizeof line->text, text);
    } else {
        p->logs_dropped++;
    }
    self->anything_pending = 1;
    pthread_mutex_unlock(&self->lock);
}

static void on_client_error(rd_kafka_t *client, int code, const char *reason, void *opaque) {
    Producer *self = opaque;
    char fatal_reason[TEXT];
    int fatal = code == RD_KAFKA_RESP_ERR__FATAL;
    if (fatal) { /* the underlying error, as confluent-kafka reports it */
        code = rk.fatal_error(client, fatal_reason, sizeof fatal_reason);
        reason = fatal_reason;
    }
    pthread_mutex_lock(&self->lock);
    Pending *p = self->pending;
    if (p->n_errors < ERROR_SLOTS) {
        ClientError *e = &p->errors[p->n_errors++];
        e->code = code;
        e->fatal = fatal;
        copy_text(e->reason, sizeof e->reason, reason);
    }
    self->anything_pending = 1;
    pthread_mutex_unlock(&self->lock);
}

/* Hand what the callbacks queued to Python. GIL held. Returns -1 with an exception set
 * if a Python callable raised. */
static int dispatch(Producer *self) {
    if (__atomic_load_n(&self->any_failure, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&self->any_failure, 0, __ATOMIC_RELAXED);
        PyObject *failures = PyList_New(0);
        if (failures == NULL) return -1;
        for (int tp = 0; tp < MAX_STREAMS; tp++) {
            for (int doubtful = 0; doubtful < 2; doubtful++) {
                uint64_t *unreported = doubtful ? self->doubts_unreported : self->failures_unreported;
                uint64_t count = __atomic_exchange_n(&unreported[tp], 0, __ATOMIC_RELAXED);
                if (count == 0) continue;
                int code = __atomic_load_n(&self->last_failure[tp], __ATOMIC_RELAXED);
                PyObject *item = Py_BuildValue("(iKsO)", tp, (unsigned long long)count,
                                               rk.err2str(code), doubtful ? Py_True : Py_False);
                if (item == NULL || PyList_Append(failures, item) < 0) {
                    Py_XDECREF(item);
                    Py_DECREF(failures);
                    return -1;
                }
                Py_DECREF(item);
            }
        }
        PyObject *result = PyObject_CallOneArg(self->on_failures, failures);
        Py_DECREF(failures);
        if (result == NULL) return -1;
        Py_DECREF(result);
    }
    if (!__atomic_load_n(&self->anything_pending, __ATOMIC_ACQUIRE)) return 0;
    Pending *taken = PyMem_RawCalloc(1, sizeof(Pending));
    if (taken == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    pthread_mutex_lock(&self->lock); /* swap, so no Python runs under the lock */
    Pending *filled = self->pending;
    self->pending = taken;
    self->anything_pending = 0;
    pthread_mutex_unlock(&self->lock);

    int status = 0;
    PyObject *result;
    for (int i = 0; i < filled->n_errors && status == 0; i++) {
        ClientError *e = &filled->errors[i];
        result = PyObject_CallFunction(self->on_error, "isO", e->code, e->reason,
                                       e->fatal ? Py_True : Py_False);
        if (result == NULL) status = -1;
        Py_XDECREF(result);
    }
    for (int i = 0; i < filled->n_logs && status == 0; i++) {
        LogLine *line = &filled->logs[i];
        result = PyObject_CallFunction(self->on_log, "iss", line->level, line->facility, line->text);
        if (result == NULL) status = -1;
        Py_XDECREF(result);
    }
    if (filled->logs_dropped && status == 0) {
        char text[96];
        snprintf(text, sizeof text, "%llu more log lines were dropped",
                 (unsigned long long)filled->logs_dropped);
        result = PyObject_CallFunction(self->on_log, "iss", 4, "LOG", text);
        if (result == NULL) status = -1;
        Py_XDECREF(result);
    }
    for (int i = 0; i < filled->n_bridge_failures && status == 0; i++) {
        BridgeFailure *f = &filled->bridge_failures[i];
        result = PyObject_CallFunction(self->on_bridge_failure, "ss", f->topic, f->error);
        if (result == NULL) status = -1;
        Py_XDECREF(result);
    }
    for (uint64_t i = 0; i < filled->bridge_failures_unlisted && status == 0; i++) {
        result = PyObject_CallFunction(self->on_bridge_failure, "ss", "?", "(not listed)");
        if (result == NULL) status = -1;
        Py_XDECREF(result);
    }
    PyMem_RawFree(filled);
    return status;
}

/* rd_kafka_poll, without the GIL when it may wait; then dispatch. */
static int serve(Producer *self, int timeout_ms) {
    if (timeout_ms > 0) {
        Py_BEGIN_ALLOW_THREADS
        rk.poll(self->client, timeout_ms);
        Py_END_ALLOW_THREADS
    } else {
        rk.poll(self->client, 0);
    }
    return dispatch(self);
}

static int ready(Producer *self) {
    if (self->client == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the producer is closed");
        return 0;
    }
    return 1;
}

static int Producer_init(Producer *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"config", "on_log", "on_error", "on_failures", "on_bridge_failure", NULL};
    PyObject *config, *callbacks[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOO", keywords, &config, &callbacks[0],
                                     &callbacks[1], &callbacks[2], &callbacks[3]))
        return -1;
    if (!rk_loaded) {
        PyErr_SetString(PyExc_RuntimeError, "librdkafka is not loaded (load_library first)");
        return -1;
    }
    if (self->client != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "already initialised");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        if (!PyCallable_Check(callbacks[i])) {
            PyErr_SetString(PyExc_TypeError, "callbacks must be callable");
            return -1;
        }
    }
    PyObject *items = PySequence_Fast(config, "config must be a sequence of (name, value)");
    if (items == NULL) return -1;
    rd_kafka_conf_t *conf = rk.conf_new();
    char errstr[512];
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(items); i++) {
        const char *name, *value;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(items, i), "ss", &name, &value)) {
            rk.conf_destroy(conf);
            Py_DECREF(items);
            return -1;
        }
        if (rk.conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            PyErr_SetString(PyExc_ValueError, errstr);
            rk.conf_destroy(conf);
            Py_DECREF(items);
            return -1;
        }
    }
    Py_DECREF(items);
    /* Log lines go to the main queue, served by rd_kafka_poll in the caller's thread. */
    if (rk.conf_set(conf, "log.queue", "true", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        PyErr_SetString(PyExc_ValueError, errstr);
        rk.conf_destroy(conf);
        return -1;
    }
    self->pending = PyMem_RawCalloc(1, sizeof(Pending));
    if (self->pending == NULL) {
        rk.conf_destroy(conf);
        PyErr_NoMemory();
        return -1;
    }
    pthread_mutex_init(&self->lock, NULL);
    for (int i = 0; i < 4; i++) Py_INCREF(callbacks[i]);
    self->on_log = callbacks[0];
    self->on_error = callbacks[1];
    self->on_failures = callbacks[2];
    self->on_bridge_failure = callbacks[3];
    rk.conf_set_opaque(conf, self);
    rk.conf_set_dr_msg_cb(conf, on_delivery);
    rk.conf_set_log_cb(conf, on_log);
    rk.conf_set_error_cb(conf, on_client_error);
    rd_kafka_t *client = rk.new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (client == NULL) { /* conf is still ours */
        rk.conf_destroy(conf);
        PyErr_SetString(PyExc_ValueError, errstr);
        return -1;
    }
    rk.set_log_queue(client, NULL);
    self->client = client;
    return 0;
}

static void drop_routes(Producer *self) {
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (self->routes[i].topic) rk.topic_destroy(self->routes[i].topic);
        if (self->routes[i].headers) rk.headers_destroy(self->routes[i].headers);
        self->routes[i].topic = NULL;
        self->routes[i].headers = NULL;
    }
}

static void destroy_client(Producer *self) {
    if (self->client == NULL) return;
    drop_routes(self);
    rd_kafka_t *client = self->client;
    self->client = NULL;
    Py_BEGIN_ALLOW_THREADS
    rk.destroy(client); /* joins librdkafka's threads; what is queued is dropped */
    Py_END_ALLOW_THREADS
}

static void Producer_dealloc(Producer *self) {
    destroy_client(self);
    if (self->pending) {
        PyMem_RawFree(self->pending);
        pthread_mutex_destroy(&self->lock);
    }
    Py_CLEAR(self->on_log);
    Py_CLEAR(self->on_error);
    Py_CLEAR(self->on_failures);
    Py_CLEAR(self->on_bridge_failure);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int stream_of(long tp_id) {
    if (tp_id < 0 || tp_id >= MAX_STREAMS) {
        PyErr_Format(PyExc_ValueError, "stream %ld is outside 0..%d", tp_id, MAX_STREAMS - 1);
        return -1;
    }
    return (int)tp_id;
}

/* headers: None, or a sequence of (name, bytes | str | None). */
static rd_kafka_headers_t *build_headers(PyObject *headers, int *failed) {
    *failed = 0;
    if (headers == Py_None) return NULL;
    PyObject *items = PySequence_Fast(headers, "headers must be a sequence of (name, value)");
    if (items == NULL) {
        *failed = 1;
        return NULL;
    }
    rd_kafka_headers_t *built = rk.headers_new((size_t)PySequence_Fast_GET_SIZE(items));
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(items); i++) {
        const char *name;
        PyObject *value;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(items, i), "sO", &name, &value)) goto fail;
        const char *data = NULL;
        Py_ssize_t size = 0;
        if (PyBytes_Check(value)) {
            data = PyBytes_AS_STRING(value);
            size = PyBytes_GET_SIZE(value);
        } else if (PyUnicode_Check(value)) {
            data = PyUnicode_AsUTF8AndSize(value, &size);
            if (data == NULL) goto fail;
        } else if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError, "a header value must be bytes, str or None");
            goto fail;
        }
        rk.header_add(built, name, -1, data, data ? size : 0);
    }
    Py_DECREF(items);
    return built;
fail:
    rk.headers_destroy(built);
    Py_DECREF(items);
    *failed = 1;
    return NULL;
}

static PyObject *Producer_set_route(Producer *self, PyObject *args) {
    long tp_id;
    const char *topic;
    PyObject *headers;
    if (!PyArg_ParseTuple(args, "lsO", &tp_id, &topic, &headers)) return NULL;
    if (!ready(self)) return NULL;
    int stream = stream_of(tp_id);
    if (stream < 0) return NULL;
    int failed;
    rd_kafka_headers_t *built = build_headers(headers, &failed);
    if (failed) return NULL;
    rd_kafka_topic_t *handle = rk.topic_new(self->client, topic, NULL);
    if (handle == NULL) {
        if (built) rk.headers_destroy(built);
        PyErr_Format(PyExc_ValueError, "librdkafka refused topic %s", topic);
        return NULL;
    }
    Route *route = &self->routes[stream];
    if (route->topic) rk.topic_destroy(route->topic);
    if (route->headers) rk.headers_destroy(route->headers);
    route->topic = handle;
    route->headers = built;
    Py_RETURN_NONE;
}

/* New routes and zeroed event counters for a session; the previous one was flushed. */
static PyObject *Producer_start_session(Producer *self, PyObject *unused) {
    (void)unused;
    if (!ready(self)) return NULL;
    drop_routes(self);
    for (int i = 0; i < MAX_STREAMS; i++) {
        __atomic_store_n(&self->produced[i], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&self->acked[i], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&self->failed[i], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&self->in_doubt[i], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&self->failures_unreported[i], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&self->doubts_unreported[i], 0, __ATOMIC_RELAXED);
    }
    Py_RETURN_NONE;
}

static rd_kafka_resp_err_t produce_one(Producer *self, Route *route, uintptr_t stream,
                                       const char *value, size_t size, const char *key,
                                       size_t key_size, int64_t timestamp_ms) {
    rd_kafka_resp_err_t err;
    if (route->headers) {
        rd_kafka_headers_t *headers = rk.headers_copy(route->headers);
        err = rk.producev(self->client, RD_KAFKA_V_RKT(route->topic),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE((void *)value, size), RD_KAFKA_V_KEY(key, key_size),
                          RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_OPAQUE((void *)stream),
                          RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
        if (err) rk.headers_destroy(headers); /* not taken over on failure */
    } else {
        err = rk.producev(self->client, RD_KAFKA_V_RKT(route->topic),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE((void *)value, size), RD_KAFKA_V_KEY(key, key_size),
                          RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_OPAQUE((void *)stream),
                          RD_KAFKA_V_END);
    }
    return err;
}

static double monotonic_s(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* produce_events(batch, key, queue_full_timeout_ms) -> (handed over, [(tp_id, error)])
 *
 * batch: [(tp_id, value bytes, timestamp_ms), ...] as the encoder drains them. A full
 * queue is waited out (serving delivery reports) for up to queue_full_timeout_ms per
 * record; past that the rest of the batch is not produced and the count says how far
 * it got. A record librdkafka refuses outright (e.g. too large) is listed, not retried. */
static PyObject *Producer_produce_events(Producer *self, PyObject *args) {
    PyObject *batch;
    const char *key;
    Py_ssize_t key_size;
    double timeout_ms;
    if (!PyArg_ParseTuple(args, "O!y#d", &PyList_Type, &batch, &key, &key_size, &timeout_ms))
        return NULL;
    if (!ready(self)) return NULL;
    PyObject *refused = PyList_New(0);
    if (refused == NULL) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(batch), index;
    for (index = 0; index < n; index++) {
        PyObject *item = PyList_GET_ITEM(batch, index);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            PyErr_SetString(PyExc_TypeError, "a record is (tp_id, value, timestamp_ms)");
            goto fail;
        }
        long tp_id = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
        PyObject *value = PyTuple_GET_ITEM(item, 1);
        long long timestamp_ms = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 2));
        if (PyErr_Occurred()) goto fail;
        if (!PyBytes_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "a record's value must be bytes");
            goto fail;
        }
        int stream = stream_of(tp_id);
        if (stream < 0) goto fail;
        Route *route = &self->routes[stream];
        if (route->topic == NULL) {
            PyErr_Format(PyExc_ValueError, "no route for stream %d", stream);
            goto fail;
        }
        double deadline = 0;
        for (;;) {
            rd_kafka_resp_err_t err =
                produce_one(self, route, (uintptr_t)stream, PyBytes_AS_STRING(value),
                            (size_t)PyBytes_GET_SIZE(value), key, (size_t)key_size, timestamp_ms);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                add(&self->produced[stream], 1);
                break;
            }
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                PyObject *entry = Py_BuildValue("(is)", stream, rk.err2str(err));
                if (entry == NULL || PyList_Append(refused, entry) < 0) {
                    Py_XDECREF(entry);
                    goto fail;
                }
                Py_DECREF(entry);
                break;
            }
            double now = monotonic_s();
            if (deadline == 0) {
                deadline = now + timeout_ms / 1000.0;
            } else if (now >= deadline) {
                goto done; /* the caller counts the rest as lost at the bridge */
            }
            if (serve(self, 5) < 0) goto fail; /* delivery reports free queue slots */
        }
    }
done:
    if (serve(self, 0) < 0) goto fail;
    PyObject *result = Py_BuildValue("(nN)", index, refused);
    return result;
fail:
    Py_DECREF(refused);
    return NULL;
}

/* produce(topic, value, key, headers) -> librdkafka's error code (0: queued).
 * The bridge's own records: their failures are reported by topic (on_bridge_failure). */
static PyObject *Producer_produce(Producer *self, PyObject *args) {
    const char *topic, *value, *key;
    Py_ssize_t size, key_size;
    PyObject *headers;
    if (!PyArg_ParseTuple(args, "sy#y#O", &topic, &value, &size, &key, &key_size, &headers))
        return NULL;
    if (!ready(self)) return NULL;
    int failed;
    rd_kafka_headers_t *built = build_headers(headers, &failed);
    if (failed) return NULL;
    rd_kafka_resp_err_t err;
    uintptr_t stream = BRIDGE_STREAM;
    if (built) {
        err = rk.producev(self->client, RD_KAFKA_V_TOPIC(topic),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE((void *)value, (size_t)size),
                          RD_KAFKA_V_KEY(key, (size_t)key_size), RD_KAFKA_V_OPAQUE((void *)stream),
                          RD_KAFKA_V_HEADERS(built), RD_KAFKA_V_END);
        if (err) rk.headers_destroy(built);
    } else {
        err = rk.producev(self->client, RD_KAFKA_V_TOPIC(topic),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE((void *)value, (size_t)size),
                          RD_KAFKA_V_KEY(key, (size_t)key_size), RD_KAFKA_V_OPAQUE((void *)stream),
                          RD_KAFKA_V_END);
    }
    return PyLong_FromLong((long)err);
}

static int timeout_ms_of(double timeout_s) {
    if (timeout_s <= 0) return 0;
    if (timeout_s > 86400) return 86400 * 1000;
    return (int)(timeout_s * 1000 + 0.5);
}

static PyObject *Producer_poll(Producer *self, PyObject *arg) {
    double timeout_s = PyFloat_AsDouble(arg);
    if (timeout_s == -1 && PyErr_Occurred()) return NULL;
    if (!ready(self)) return NULL;
    if (serve(self, timeout_ms_of(timeout_s)) < 0) return NULL;
    Py_RETURN_NONE;
}

/* Wait for every queued record to be acked or to fail; returns how many remain. */
static PyObject *Producer_flush(Producer *self, PyObject *arg) {
    double timeout_s = PyFloat_AsDouble(arg);
    if (timeout_s == -1 && PyErr_Occurred()) return NULL;
    if (!ready(self)) return NULL;
    int timeout_ms = timeout_ms_of(timeout_s);
    Py_BEGIN_ALLOW_THREADS
    rk.flush(self->client, timeout_ms);
    Py_END_ALLOW_THREADS
    if (dispatch(self) < 0) return NULL;
    return PyLong_FromLong(rk.outq_len(self->client));
}

/* Drop what was never sent; its delivery reports (failures) are served here. */
static PyObject *Producer_purge_queued(Producer *self, PyObject *unused) {
    (void)unused;
    if (!ready(self)) return NULL;
    rd_kafka_resp_err_t err;
    Py_BEGIN_ALLOW_THREADS
    err = rk.purge(self->client, RD_KAFKA_PURGE_F_QUEUE);
    Py_END_ALLOW_THREADS
    if (err) {
        PyErr_Format(PyExc_RuntimeError, "purge failed: %s", rk.err2str(err));
        return NULL;
    }
    if (serve(self, 0) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *counts_of(const uint64_t *counters, int n) {
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *value = PyLong_FromUnsignedLongLong(load(&counters[i]));
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, value);
    }
    return out;
}

/* (produced, acked, failed, in_doubt): per stream, MAX_STREAMS each. */
static PyObject *Producer_counts(Producer *self, PyObject *unused) {
    (void)unused;
    return Py_BuildValue("(NNNN)", counts_of(self->produced, MAX_STREAMS),
                         counts_of(self->acked, MAX_STREAMS), counts_of(self->failed, MAX_STREAMS),
                         counts_of(self->in_doubt, MAX_STREAMS));
}

static PyObject *Producer_observe_latency(Producer *self, PyObject *arg) {
    PyObject *items = PySequence_Fast(arg, "bounds must be a sequence of milliseconds");
    if (items == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    if (n > MAX_BOUNDS) {
        Py_DECREF(items);
        PyErr_Format(PyExc_ValueError, "at most %d bounds", MAX_BOUNDS);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long long bound = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(items, i));
        if (bound == -1 && PyErr_Occurred()) {
            Py_DECREF(items);
            return NULL;
        }
        if (i > 0 && bound <= self->bounds_ms[i - 1]) {
            Py_DECREF(items);
            PyErr_SetString(PyExc_ValueError, "bounds must increase");
            return NULL;
        }
        self->bounds_ms[i] = bound;
    }
    Py_DECREF(items);
    self->n_bounds = (int)n;
    memset(self->latency_counts, 0, sizeof self->latency_counts);
    self->latency_sum_ms = 0;
    self->latency_on = 1;
    Py_RETURN_NONE;
}

/* (counts per bucket, the last one +Inf; sum in ms) */
static PyObject *Producer_latency(Producer *self, PyObject *unused) {
    (void)unused;
    return Py_BuildValue("(NK)", counts_of(self->latency_counts, self->n_bounds + 1),
                         (unsigned long long)load(&self->latency_sum_ms));
}

static PyObject *Producer_close(Producer *self, PyObject *unused) {
    (void)unused;
    destroy_client(self);
    Py_RETURN_NONE;
}

static Py_ssize_t Producer_len(Producer *self) {
    if (self->client == NULL) return 0;
    return rk.outq_len(self->client);
}

static PyObject *Producer_name(Producer *self, void *unused) {
    (void)unused;
    if (!ready(self)) return NULL;
    return PyUnicode_FromString(rk.name(self->client));
}

static PyMethodDef Producer_methods[] = {
    {"set_route", (PyCFunction)Producer_set_route, METH_VARARGS, NULL},
    {"start_session", (PyCFunction)Producer_start_session, METH_NOARGS, NULL},
    {"produce_events", (PyCFunction)Producer_produce_events, METH_VARARGS, NULL},
    {"produce", (PyCFunction)Producer_produce, METH_VARARGS, NULL},
    {"poll", (PyCFunction)Producer_poll, METH_O, NULL},
    {"flush", (PyCFunction)Producer_flush, METH_O, NULL},
    {"purge_queued", (PyCFunction)Producer_purge_queued, METH_NOARGS, NULL},
    {"counts", (PyCFunction)Producer_counts, METH_NOARGS, NULL},
    {"observe_latency", (PyCFunction)Producer_observe_latency, METH_O, NULL},
    {"latency", (PyCFunction)Producer_latency, METH_NOARGS, NULL},
    {"close", (PyCFunction)Producer_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Producer_getset[] = {
    {"name", (getter)Producer_name, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Producer_as_sequence = {
    .sq_length = (lenfunc)Producer_len,
};

static PyTypeObject ProducerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bridge.sinks.kafka._producer.Producer",
    .tp_basicsize = sizeof(Producer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Producer_init,
    .tp_dealloc = (destructor)Producer_dealloc,
    .tp_methods = Producer_methods,
    .tp_getset = Producer_getset,
    .tp_as_sequence = &Producer_as_sequence,
};

static PyMethodDef module_methods[] = {
    {"load_library", load_library, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_producer", NULL, -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__producer(void) {
    if (PyType_Ready(&ProducerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ProducerType);
    if (PyModule_AddObject(m, "Producer", (PyObject *)&ProducerType) < 0) {
        Py_DECREF(&ProducerType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "MAX_STREAMS", MAX_STREAMS) < 0 ||
        PyModule_AddIntConstant(m, "QUEUE_FULL", RD_KAFKA_RESP_ERR__QUEUE_FULL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
