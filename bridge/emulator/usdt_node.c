/*
 * usdt_node.c: an emulated Bitcoin Core node for testing USDT tracers.
 *
 * No bitcoind binary is available where the bridge is developed and tested, so this
 * program fires the same 20 USDT tracepoints as Bitcoin Core (master d84fc352, the v29+
 * layout): same provider:name, same argument order, same C types, and every probe is
 * gated by a semaphore in the ELF section ".probes", exactly like the TRACEPOINT macros
 * of Core's src/util/trace.h. A tracer therefore has to do what it would do against a
 * real node (raise the semaphore through USDT(pid=...)) or nothing fires.
 *
 * Source of truth: shared/reference/bitcoin-tracing.md sections 1.1 and 1.2. This file
 * deliberately shares nothing with the bridge, so it is an independent reading of that
 * contract and can catch the bridge's mistakes instead of repeating them.
 *
 * Modes (see --help): "mixed" fires every selected tracepoint round-robin with edge-case
 * or seeded random values; "ping" emulates a ping flood (one inbound "ping" plus one
 * outbound "pong" per ping) in rate-limited stages, as in RFC #35142's benchmark.
 *
 * Every call site counts "hits" (reached) and "fired" (semaphore was up, so the probe ran);
 * the report at exit gives both per tracepoint. "fired" is exact, so a tracer test can
 * assert delivered + lost == fired. --record writes the exact values of every fired event.
 *
 * Build: gcc -O2 -g -Wall -Wextra -Werror usdt_node.c -o usdt_node [-DTB_NO_WALLET]
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------
 * Bitcoin Core's src/util/trace.h (ENABLE_TRACING branch), reproduced for C.
 * ------------------------------------------------------------------------------------ */

/* Lets sys/sdt.h know we use the variadic STAP_PROBEV macro. */
#define SDT_USE_VARIADIC 1
/* Makes every note carry the address of its semaphore, which tracers increment. */
#define _SDT_HAS_SEMAPHORES 1

/* One global counting semaphore per tracepoint, in ".probes" as Core declares it. */
#define TRACEPOINT_SEMAPHORE(context, event) \
    __extension__ unsigned short context##_##event##_semaphore __attribute__((section(".probes")))

#include <sys/sdt.h>

#define TRACEPOINT_ACTIVE(context, event) (context##_##event##_semaphore > 0)

/* As in Core, arguments are evaluated only while the semaphore is up. The one addition
 * is TB_COUNT_FIRED, so the report can say exactly how many times each probe ran. */
#define TRACEPOINT(context, event, ...)                       \
    do {                                                      \
        if (TRACEPOINT_ACTIVE(context, event)) {              \
            TB_COUNT_FIRED(context, event);                   \
            STAP_PROBEV(context, event, __VA_ARGS__);         \
        }                                                     \
    } while (0)

/* ------------------------------------------------------------------------------------
 * The tracepoint list (reference doc section 1.2), in Core's documentation order.
 * ------------------------------------------------------------------------------------ */

#define TB_CORE_TRACEPOINTS(X)              \
    X(net, inbound_message)                 \
    X(net, outbound_message)                \
    X(net, inbound_connection)              \
    X(net, outbound_connection)             \
    X(net, evicted_inbound_connection)      \
    X(net, misbehaving_connection)          \
    X(net, closed_connection)               \
    X(validation, block_connected)          \
    X(utxocache, flush)                     \
    X(utxocache, add)                       \
    X(utxocache, spent)                     \
    X(utxocache, uncache)                   \
    X(mempool, added)                       \
    X(mempool, removed)                     \
    X(mempool, replaced)                    \
    X(mempool, rejected)

/* A Core build without the wallet (-DENABLE_WALLET=OFF) has no coin_selection probes at
 * all; TB_NO_WALLET reproduces that so "missing tracepoint is skipped" can be tested. */
#ifdef TB_NO_WALLET
#define TB_WALLET_TRACEPOINTS(X)
#else
#define TB_WALLET_TRACEPOINTS(X)                    \
    X(coin_selection, selected_coins)               \
    X(coin_selection, normal_create_tx_internal)    \
    X(coin_selection, attempting_aps_create_tx)     \
    X(coin_selection, aps_create_tx_internal)
#endif

#define TB_ALL_TRACEPOINTS(X) TB_CORE_TRACEPOINTS(X) TB_WALLET_TRACEPOINTS(X)

enum tb_tp_id {
#define TB_X_ENUM(c, e) TB_ID_##c##_##e,
    TB_ALL_TRACEPOINTS(TB_X_ENUM)
#undef TB_X_ENUM
    TB_NUM_TP
};

static const char *const tb_tp_names[TB_NUM_TP] = {
#define TB_X_NAME(c, e) #c ":" #e,
    TB_ALL_TRACEPOINTS(TB_X_NAME)
#undef TB_X_NAME
};

#define TB_X_SEMAPHORE(c, e) TRACEPOINT_SEMAPHORE(c, e);
TB_ALL_TRACEPOINTS(TB_X_SEMAPHORE)
#undef TB_X_SEMAPHORE

#define TB_ID(c, e) TB_ID_##c##_##e

static uint64_t tb_hits[TB_NUM_TP];
static uint64_t tb_fired[TB_NUM_TP];

#define TB_COUNT_FIRED(c, e) (++tb_fired[TB_ID(c, e)])

/* Each tracepoint lives in its own out-of-line function that takes the arguments as
 * parameters of exactly Core's C types. noipa stops GCC from cloning the function with
 * constants propagated into it (a ".constprop" clone would give a second note, or turn an
 * argument into an immediate of a different width); the types are therefore those of the
 * parameters, which is what readelf and BCC see. */
#if defined(__clang__)
#define TB_PROBE_FN __attribute__((noinline))
#else
#define TB_PROBE_FN __attribute__((noipa))
#endif

/* ------------------------------------------------------------------------------------
 * Recording (--record): one JSON line per fired event with the exact values passed.
 * ------------------------------------------------------------------------------------ */

static FILE *tb_rec;
static bool tb_rec_first;
/* 1 MiB of stdio buffer: a ping flood with a tracer attached fires ~1M events/s, and
 * each ~120-byte line must not cost a write(2). */
#define TB_REC_BUFFER_BYTES (1u << 20)

static void rec_begin(enum tb_tp_id id)
{
    fputs_unlocked("{\"tp\": \"", tb_rec);
    fputs_unlocked(tb_tp_names[id], tb_rec);
    fputs_unlocked("\", \"args\": [", tb_rec);
    tb_rec_first = true;
}

static void rec_sep(void)
{
    if (!tb_rec_first)
        fputs_unlocked(", ", tb_rec);
    tb_rec_first = false;
}

static void rec_end(void)
{
    fputs_unlocked("]}\n", tb_rec);
}

static void rec_i64(int64_t v)
{
    rec_sep();
    fprintf(tb_rec, "%" PRId64, v);
}

static void rec_u64(uint64_t v)
{
    rec_sep();
    fprintf(tb_rec, "%" PRIu64, v);
}

static void rec_bool(bool v)
{
    rec_sep();
    fputs_unlocked(v ? "true" : "false", tb_rec);
}

static void hex_out(const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        putc_unlocked(digits[p[i] >> 4], tb_rec);
        putc_unlocked(digits[p[i] & 0xf], tb_rec);
    }
}

/* Hashes and payloads: hex of the bytes in memory order (never reversed). */
static void rec_bytes(const unsigned char *p, size_t n)
{
    rec_sep();
    putc_unlocked('"', tb_rec);
    hex_out(p, n);
    putc_unlocked('"', tb_rec);
}

/* Strict UTF-8, rejecting what Python's strict decoder rejects (overlong forms,
 * surrogates, code points above U+10FFFF), so "is a JSON string" means "decodes". */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* C strings: a JSON string if valid UTF-8, else {"hex": "<bytes>"}. */
static void rec_str(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    rec_sep();
    if (!utf8_valid(s, n)) {
        fputs_unlocked("{\"hex\": \"", tb_rec);
        hex_out(s, n);
        fputs_unlocked("\"}", tb_rec);
        return;
    }
    putc_unlocked('"', tb_rec);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            putc_unlocked('\\', tb_rec);
            putc_unlocked((int)c, tb_rec);
        } else if (c < 0x20) {
            fprintf(tb_rec, "\\u%04x", c);
        } else {
            putc_unlocked((int)c, tb_rec);
        }
    }
    putc_unlocked('"', tb_rec);
}

/* ------------------------------------------------------------------------------------
 * The 20 tracepoints. Types per reference doc section 1.2 (int64 -> int64_t, etc.), except
 * where the real bitcoind's probe notes (d84fc352) show int64 ("-8@") for what the doc
 * calls uint64: block_connected's sigops and duration_ns, and closed/evicted connections'
 * time_established (TicksSinceEpoch<seconds>).
 * ------------------------------------------------------------------------------------ */

#define TB_HASH_BYTES 32 /* uint256: txids, block hashes, package hashes */

/* Each function: count the hit, fire through Core's macro, and record if it fired. The
 * fired counter is compared before and after, rather than re-reading the semaphore, so
 * the record agrees with the count even if a tracer detaches in between. */
#define TB_ENTER(c, e)                                        \
    const uint64_t tb_fired_before = tb_fired[TB_ID(c, e)];   \
    ++tb_hits[TB_ID(c, e)]
#define TB_RECORDING(c, e) \
    (__builtin_expect(tb_rec != NULL, 0) && tb_fired[TB_ID(c, e)] != tb_fired_before)

static TB_PROBE_FN void fire_net_inbound_message(int64_t peer_id, const char *peer_addr,
                                                 const char *conn_type, const char *msg_type,
                                                 uint64_t msg_size, const unsigned char *msg)
{
    TB_ENTER(net, inbound_message);
    TRACEPOINT(net, inbound_message, peer_id, peer_addr, conn_type, msg_type, msg_size, msg);
    if (TB_RECORDING(net, inbound_message)) {
        rec_begin(TB_ID(net, inbound_message));
        rec_i64(peer_id), rec_str(peer_addr), rec_str(conn_type), rec_str(msg_type);
        rec_u64(msg_size), rec_bytes(msg, msg_size);
        rec_end();
    }
}

static TB_PROBE_FN void fire_net_outbound_message(int64_t peer_id, const char *peer_addr,
                                                  const char *conn_type, const char *msg_type,
                                                  uint64_t msg_size, const unsigned char *msg)
{
    TB_ENTER(net, outbound_message);
    TRACEPOINT(net, outbound_message, peer_id, peer_addr, conn_type, msg_type, msg_size, msg);
    if (TB_RECORDING(net, outbound_message)) {
        rec_begin(TB_ID(net, outbound_message));
        rec_i64(peer_id), rec_str(peer_addr), rec_str(conn_type), rec_str(msg_type);
        rec_u64(msg_size), rec_bytes(msg, msg_size);
        rec_end();
    }
}

static TB_PROBE_FN void fire_net_inbound_connection(int64_t peer_id, const char *addr,
                                                    const char *conn_type, uint32_t network,
                                                    uint64_t existing)
{
    TB_ENTER(net, inbound_connection);
    TRACEPOINT(net, inbound_connection, peer_id, addr, conn_type, network, existing);
    if (TB_RECORDING(net, inbound_connection)) {
        rec_begin(TB_ID(net, inbound_connection));
        rec_i64(peer_id), rec_str(addr), rec_str(conn_type), rec_u64(network), rec_u64(existing);
        rec_end();
    }
}

static TB_PROBE_FN void fire_net_outbound_connection(int64_t peer_id, const char *addr,
                                                     const char *conn_type, uint32_t network,
                                                     uint64_t existing)
{
    TB_ENTER(net, outbound_connection);
    TRACEPOINT(net, outbound_connection, peer_id, addr, conn_type, network, existing);
    if (TB_RECORDING(net, outbound_connection)) {
        rec_begin(TB_ID(net, outbound_connection));
        rec_i64(peer_id), rec_str(addr), rec_str(conn_type), rec_u64(network), rec_u64(existing);
        rec_end();
    }
}

static TB_PROBE_FN void fire_net_evicted_inbound_connection(int64_t peer_id, const char *addr,
                                                            const char *conn_type,
                                                            uint32_t network,
                                                            int64_t time_established)
{
    TB_ENTER(net, evicted_inbound_connection);
    TRACEPOINT(net, evicted_inbound_connection, peer_id, addr, conn_type, network,
               time_established);
    if (TB_RECORDING(net, evicted_inbound_connection)) {
        rec_begin(TB_ID(net, evicted_inbound_connection));
        rec_i64(peer_id), rec_str(addr), rec_str(conn_type), rec_u64(network);
        rec_i64(time_established);
        rec_end();
    }
}

static TB_PROBE_FN void fire_net_misbehaving_connection(int64_t peer_id, const char *reason)
{
    TB_ENTER(net, misbehaving_connection);
    TRACEPOINT(net, misbehaving_connection, peer_id, reason);
    if (TB_RECORDING(net, misbehaving_connection)) {
        rec_begin(TB_ID(net, misbehaving_connection));
        rec_i64(peer_id), rec_str(reason);
        rec_end();
    }
}

static TB_PROBE_FN void fire_net_closed_connection(int64_t peer_id, const char *addr,
                                                   const char *conn_type, uint32_t network,
                                                   int64_t time_established)
{
    TB_ENTER(net, closed_connection);
    TRACEPOINT(net, closed_connection, peer_id, addr, conn_type, network, time_established);
    if (TB_RECORDING(net, closed_connection)) {
        rec_begin(TB_ID(net, closed_connection));
        rec_i64(peer_id), rec_str(addr), rec_str(conn_type), rec_u64(network);
        rec_i64(time_established);
        rec_end();
    }
}

static TB_PROBE_FN void fire_validation_block_connected(const unsigned char *block_hash,
                                                        int32_t height, uint64_t transactions,
                                                        int32_t inputs, int64_t sigops,
                                                        int64_t duration_ns)
{
    TB_ENTER(validation, block_connected);
    TRACEPOINT(validation, block_connected, block_hash, height, transactions, inputs, sigops,
               duration_ns);
    if (TB_RECORDING(validation, block_connected)) {
        rec_begin(TB_ID(validation, block_connected));
        rec_bytes(block_hash, TB_HASH_BYTES), rec_i64(height), rec_u64(transactions);
        rec_i64(inputs), rec_i64(sigops), rec_i64(duration_ns);
        rec_end();
    }
}

static TB_PROBE_FN void fire_utxocache_flush(int64_t duration_us, uint32_t mode,
                                             uint64_t coins_count, uint64_t coins_mem_usage,
                                             bool is_flush_for_prune)
{
    TB_ENTER(utxocache, flush);
    TRACEPOINT(utxocache, flush, duration_us, mode, coins_count, coins_mem_usage,
               is_flush_for_prune);
    if (TB_RECORDING(utxocache, flush)) {
        rec_begin(TB_ID(utxocache, flush));
        rec_i64(duration_us), rec_u64(mode), rec_u64(coins_count), rec_u64(coins_mem_usage);
        rec_bool(is_flush_for_prune);
        rec_end();
    }
}

static TB_PROBE_FN void fire_utxocache_add(const unsigned char *txid, uint32_t index,
                                           uint32_t height, int64_t value, bool is_coinbase)
{
    TB_ENTER(utxocache, add);
    TRACEPOINT(utxocache, add, txid, index, height, value, is_coinbase);
    if (TB_RECORDING(utxocache, add)) {
        rec_begin(TB_ID(utxocache, add));
        rec_bytes(txid, TB_HASH_BYTES), rec_u64(index), rec_u64(height), rec_i64(value);
        rec_bool(is_coinbase);
        rec_end();
    }
}

static TB_PROBE_FN void fire_utxocache_spent(const unsigned char *txid, uint32_t index,
                                             uint32_t height, int64_t value, bool is_coinbase)
{
    TB_ENTER(utxocache, spent);
    TRACEPOINT(utxocache, spent, txid, index, height, value, is_coinbase);
    if (TB_RECORDING(utxocache, spent)) {
        rec_begin(TB_ID(utxocache, spent));
        rec_bytes(txid, TB_HASH_BYTES), rec_u64(index), rec_u64(height), rec_i64(value);
        rec_bool(is_coinbase);
        rec_end();
    }
}

static TB_PROBE_FN void fire_utxocache_uncache(const unsigned char *txid, uint32_t index,
                                               uint32_t height, int64_t value, bool is_coinbase)
{
    TB_ENTER(utxocache, uncache);
    TRACEPOINT(utxocache, uncache, txid, index, height, value, is_coinbase);
    if (TB_RECORDING(utxocache, uncache)) {
        rec_begin(TB_ID(utxocache, uncache));
        rec_bytes(txid, TB_HASH_BYTES), rec_u64(index), rec_u64(height), rec_i64(value);
        rec_bool(is_coinbase);
        rec_end();
    }
}

static TB_PROBE_FN void fire_mempool_added(const unsigned char *txid, int32_t vsize, int64_t fee)
{
    TB_ENTER(mempool, added);
    TRACEPOINT(mempool, added, txid, vsize, fee);
    if (TB_RECORDING(mempool, added)) {
        rec_begin(TB_ID(mempool, added));
        rec_bytes(txid, TB_HASH_BYTES), rec_i64(vsize), rec_i64(fee);
        rec_end();
    }
}

static TB_PROBE_FN void fire_mempool_removed(const unsigned char *txid, const char *reason,
                                             int32_t vsize, int64_t fee, uint64_t entry_time)
{
    TB_ENTER(mempool, removed);
    TRACEPOINT(mempool, removed, txid, reason, vsize, fee, entry_time);
    if (TB_RECORDING(mempool, removed)) {
        rec_begin(TB_ID(mempool, removed));
        rec_bytes(txid, TB_HASH_BYTES), rec_str(reason), rec_i64(vsize), rec_i64(fee);
        rec_u64(entry_time);
        rec_end();
    }
}

static TB_PROBE_FN void fire_mempool_replaced(const unsigned char *replaced_txid,
                                              int32_t replaced_vsize, int64_t replaced_fee,
                                              uint64_t replaced_entry_time,
                                              const unsigned char *replacement_id,
                                              int32_t replacement_vsize, int64_t replacement_fee,
                                              bool replaced_by_transaction)
{
    TB_ENTER(mempool, replaced);
    TRACEPOINT(mempool, replaced, replaced_txid, replaced_vsize, replaced_fee,
               replaced_entry_time, replacement_id, replacement_vsize, replacement_fee,
               replaced_by_transaction);
    if (TB_RECORDING(mempool, replaced)) {
        rec_begin(TB_ID(mempool, replaced));
        rec_bytes(replaced_txid, TB_HASH_BYTES), rec_i64(replaced_vsize), rec_i64(replaced_fee);
        rec_u64(replaced_entry_time), rec_bytes(replacement_id, TB_HASH_BYTES);
        rec_i64(replacement_vsize), rec_i64(replacement_fee), rec_bool(replaced_by_transaction);
        rec_end();
    }
}

static TB_PROBE_FN void fire_mempool_rejected(const unsigned char *txid, const char *reason)
{
    TB_ENTER(mempool, rejected);
    TRACEPOINT(mempool, rejected, txid, reason);
    if (TB_RECORDING(mempool, rejected)) {
        rec_begin(TB_ID(mempool, rejected));
        rec_bytes(txid, TB_HASH_BYTES), rec_str(reason);
        rec_end();
    }
}

#ifndef TB_NO_WALLET
static TB_PROBE_FN void fire_coin_selection_selected_coins(const char *wallet_name,
                                                           const char *algorithm, int64_t target,
                                                           int64_t waste, int64_t selected_value)
{
    TB_ENTER(coin_selection, selected_coins);
    TRACEPOINT(coin_selection, selected_coins, wallet_name, algorithm, target, waste,
               selected_value);
    if (TB_RECORDING(coin_selection, selected_coins)) {
        rec_begin(TB_ID(coin_selection, selected_coins));
        rec_str(wallet_name), rec_str(algorithm), rec_i64(target), rec_i64(waste);
        rec_i64(selected_value);
        rec_end();
    }
}

static TB_PROBE_FN void fire_coin_selection_normal_create_tx_internal(const char *wallet_name,
                                                                      bool success, int64_t fee,
                                                                      int32_t change_pos)
{
    TB_ENTER(coin_selection, normal_create_tx_internal);
    TRACEPOINT(coin_selection, normal_create_tx_internal, wallet_name, success, fee, change_pos);
    if (TB_RECORDING(coin_selection, normal_create_tx_internal)) {
        rec_begin(TB_ID(coin_selection, normal_create_tx_internal));
        rec_str(wallet_name), rec_bool(success), rec_i64(fee), rec_i64(change_pos);
        rec_end();
    }
}

static TB_PROBE_FN void fire_coin_selection_attempting_aps_create_tx(const char *wallet_name)
{
    TB_ENTER(coin_selection, attempting_aps_create_tx);
    TRACEPOINT(coin_selection, attempting_aps_create_tx, wallet_name);
    if (TB_RECORDING(coin_selection, attempting_aps_create_tx)) {
        rec_begin(TB_ID(coin_selection, attempting_aps_create_tx));
        rec_str(wallet_name);
        rec_end();
    }
}

static TB_PROBE_FN void fire_coin_selection_aps_create_tx_internal(const char *wallet_name,
                                                                   bool use_aps, bool success,
                                                                   int64_t fee, int32_t change_pos)
{
    TB_ENTER(coin_selection, aps_create_tx_internal);
    TRACEPOINT(coin_selection, aps_create_tx_internal, wallet_name, use_aps, success, fee,
               change_pos);
    if (TB_RECORDING(coin_selection, aps_create_tx_internal)) {
        rec_begin(TB_ID(coin_selection, aps_create_tx_internal));
        rec_str(wallet_name), rec_bool(use_aps), rec_bool(success), rec_i64(fee);
        rec_i64(change_pos);
        rec_end();
    }
}
#endif /* TB_NO_WALLET */

/* ------------------------------------------------------------------------------------
 * Argument values: "edge" tables (bounds a decoder must survive) and seeded "random".
 * ------------------------------------------------------------------------------------ */

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
/* The i-th call of a tracepoint takes entry i mod len of each table; tables of different
 * lengths make the combinations vary from round to round. */
#define EDGE(a, i) ((a)[(i) % N_OF(a)])

/* Core's MAX_PROTOCOL_MESSAGE_LENGTH (src/net.h): no P2P payload is larger. */
#define TB_MAX_PAYLOAD 4000000u
#define TB_DEFAULT_PAYLOAD_MAX 4096u
#define TB_GOLDEN 0x9e3779b97f4a7c15ULL /* splitmix64's increment */

static const int64_t EDGE_PEER_ID[] = {0, 1, -1, INT64_MIN, INT64_MAX, 42};
/* 0..5 are Core's Network enum (unroutable, IPv4, IPv6, onion, I2P, CJDNS), 6 internal;
 * 7 is unknown to Core and must still be carried. */
static const uint32_t EDGE_NETWORK[] = {0, 1, 2, 3, 4, 5, 6, 7};
static const uint64_t EDGE_U64[] = {0, 1, 125, INT64_MAX, UINT64_MAX};
static const int64_t EDGE_I64[] = {0, 1, -1, INT64_MIN, INT64_MAX, 2100000000000000};
static const int32_t EDGE_I32[] = {0, 1, -1, INT32_MIN, INT32_MAX, 141};
static const uint32_t EDGE_U32[] = {0, 1, UINT32_MAX};
/* Epoch seconds as uint64 (mempool entry times): 0, genesis block time, mid-2025, and the
 * uint64 bounds. */
static const uint64_t EDGE_EPOCH[] = {0, 1231006505, 1750000000, INT64_MAX, UINT64_MAX};
/* Epoch seconds as int64 (connections' time_established): the same, with the int64 bounds
 * and -1 (before the epoch). */
static const int64_t EDGE_EPOCH_I64[] = {0, 1231006505, 1750000000, -1, INT64_MIN, INT64_MAX};
/* FlushStateMode: 0 NONE .. 4 FORCE_SYNC (bitcoin#33680), 5 unknown. */
static const uint32_t EDGE_FLUSH_MODE[] = {0, 1, 2, 3, 4, 5};
/* Straddles every power-of-two boundary a size-classed buffer might use; capped at
 * --payload-max. */
static const uint32_t EDGE_PAYLOAD_SIZE[] = {0, 1, 7, 8, 255, 256, 257, 4095, 4096, 4097};

/* ConnectionTypeAsString() values, plus one unknown of 21 chars (documented max 20). */
static const char *const CONN_TYPES[] = {
    "inbound", "manual", "feeler", "outbound-full-relay", "block-relay-only",
    "addr-fetch", "private-broadcast", "unknown-conn-type-21c",
};
#define N_REAL_CONN_TYPES 7
/* RemovalReasonToString() values plus an unknown one of the documented max length 9. */
static const char *const REMOVAL_REASONS[] = {
    "expiry", "sizelimit", "reorg", "block", "conflict", "replaced", "unknownxx",
};
#define N_REAL_REMOVAL_REASONS 6
/* Real message types for random mode (protocol.h NetMsgType). */
static const char *const REAL_MSG_TYPES[] = {
    "version", "verack", "addr", "addrv2", "inv", "getdata", "merkleblock", "getblocks",
    "getheaders", "tx", "headers", "block", "getaddr", "mempool", "ping", "pong",
    "notfound", "feefilter", "sendcmpct", "cmpctblock", "getblocktxn", "blocktxn",
    "wtxidrelay", "sendaddrv2", "sendheaders", "getcfcheckpt",
};
static const char *const REAL_REJECT_REASONS[] = {
    "min relay fee not met", "bad-txns-inputs-missingorspent", "txn-already-in-mempool",
    "mempool full", "non-mandatory-script-verify-flag (Signature must be zero)",
};
static const char *const REAL_MISBEHAVING_REASONS[] = {
    "headers message size = 2001", "invalid header received", "mutated block",
    "non-continuous headers sequence",
};

/* Invalid UTF-8 for --malformed: stray bytes, a truncated sequence, a surrogate and an
 * overlong encoding; each is rejected by a strict decoder for a different reason. */
static const char *const MALFORMED[] = {
    "bad\xff\xfename", "euro-cut-\xe2\x82", "surrogate-\xed\xa0\x80", "overlong-\xc0\xaf",
};

/* Built at start-up: strings whose lengths are the point. */
#define TB_MAX_TEXT 256
static char addr_onion67[TB_MAX_TEXT], addr_onion68[TB_MAX_TEXT], addr_host69[TB_MAX_TEXT],
    addr_host100[TB_MAX_TEXT];
static char msg_long[9][TB_MAX_TEXT]; /* message types of lengths 13..21 */
static char reason128[TB_MAX_TEXT], reason129[TB_MAX_TEXT], reason200[TB_MAX_TEXT];
static char reject118[TB_MAX_TEXT], reject119[TB_MAX_TEXT], reject200[TB_MAX_TEXT];
static char wallet128[TB_MAX_TEXT], wallet129[TB_MAX_TEXT], wallet200[TB_MAX_TEXT];

/* Addresses of lengths 12, 0, 1, 67, 68, 69, 100, 18 and 15 (normal max is 68: a Tor v3
 * host plus ":port"; hosts added by name can be longer). */
static const char *EDGE_ADDR[9];
static const char *EDGE_MSG_TYPE[22]; /* lengths 1..21 (4 twice: ping and pong) */
static const char *EDGE_MISBEHAVING[5];
static const char *EDGE_REJECT[5];
static const char *EDGE_WALLET[6];

static void fill_text(char *buf, size_t len, const char *prefix, const char *suffix)
{
    static const char filler[] = "abcdefghijklmnopqrstuvwxyz234567";
    size_t np = strlen(prefix), ns = strlen(suffix);
    if (np + ns > len)
        np = ns = 0;
    memcpy(buf, prefix, np);
    for (size_t i = np; i < len - ns; i++)
        buf[i] = filler[(i * 7) % (sizeof(filler) - 1)];
    memcpy(buf + len - ns, suffix, ns);
    buf[len] = '\0';
}

static void init_tables(void)
{
    /* Tor v3: 56 base32 chars + ".onion" = 62; plus a 4- or 5-digit port. */
    fill_text(addr_onion67, 67, "", ".onion:8333");
    fill_text(addr_onion68, 68, "", ".onion:18333");
    fill_text(addr_host69, 69, "seed-", ".example.com:8333");
    fill_text(addr_host100, 100, "very-long-host-", ".example.org:8333");
    const char *addrs[] = {"1.2.3.4:8333", "", "x", addr_onion67, addr_onion68,
                           addr_host69, addr_host100, "[2001:db8::1]:8333", "127.0.0.1:18444"};
    memcpy(EDGE_ADDR, addrs, sizeof(addrs));

    const char *short_types[] = {"x", "tx", "inv", "ping", "pong", "block", "verack", "version",
                                 "notfound", "feefilter", "getheaders", "getblocktxn",
                                 "getcfcheckpt"};
    memcpy(EDGE_MSG_TYPE, short_types, sizeof(short_types));
    for (size_t k = 0; k < N_OF(msg_long); k++) {
        fill_text(msg_long[k], 13 + k, "unknownmsg", "");
        EDGE_MSG_TYPE[N_OF(short_types) + k] = msg_long[k];
    }

    /* misbehaving_connection reason: documented max 128. */
    fill_text(reason128, 128, "reason-128 ", "");
    fill_text(reason129, 129, "reason-129 ", "");
    fill_text(reason200, 200, "reason-200 ", "");
    const char *mis[] = {"headers message size = 2001", "", reason128, reason129, reason200};
    memcpy(EDGE_MISBEHAVING, mis, sizeof(mis));

    /* mempool:rejected reason: documented max 118. */
    fill_text(reject118, 118, "reject-118 ", "");
    fill_text(reject119, 119, "reject-119 ", "");
    fill_text(reject200, 200, "reject-200 ", "");
    const char *rej[] = {"min relay fee not met", "", reject118, reject119, reject200};
    memcpy(EDGE_REJECT, rej, sizeof(rej));

    /* Wallet names: no documented max; 128 is a plausible buffer size, so straddle it. */
    fill_text(wallet128, 128, "wallet-128 ", "");
    fill_text(wallet129, 129, "wallet-129 ", "");
    fill_text(wallet200, 200, "wallet-200 ", "");
    const char *wal[] = {"", "normal", "wallét-€", wallet128, wallet129, wallet200};
    memcpy(EDGE_WALLET, wal, sizeof(wal));
}

typedef struct {
    bool random;
    bool malformed;
    uint64_t rng;       /* splitmix64 state for --values random */
    uint64_t hash_base; /* start of the hash stream */
    uint64_t hash_seq;  /* hashes drawn so far */
    uint64_t msg_seq;   /* payloads stamped so far */
    uint32_t payload_max;
    unsigned char *payload;
    char addr_buf[64]; /* a random IPv4 "a.b.c.d:port" */
} gen_t;

static gen_t G;

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += TB_GOLDEN);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rnd(void)
{
    return splitmix64(&G.rng);
}

/* Uniform enough in [lo, hi] for test data (hi - lo is always far below 2^64 here). */
static int64_t rnd_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static bool rnd_bool(void)
{
    return (rnd() & 1) != 0;
}

#define RND_PICK(a) ((a)[rnd() % N_OF(a)])

/* Distinct pseudo-random hashes: splitmix64 is a bijection of its counter, so feeding it
 * disjoint counter ranges (4 words per hash) never repeats a word within a run. */
static void next_hash(unsigned char out[TB_HASH_BYTES])
{
    uint64_t state = G.hash_base + G.hash_seq++ * 4 * TB_GOLDEN;
    for (int k = 0; k < 4; k++) {
        uint64_t w = splitmix64(&state);
        memcpy(out + 8 * k, &w, 8);
    }
}

/* Payload bytes are a fixed pattern with the first 8 bytes stamped per message, so each
 * message differs and a decoder that mixes up buffers is caught. */
static const unsigned char *next_payload(uint32_t size)
{
    uint64_t state = G.msg_seq++ * TB_GOLDEN;
    uint64_t stamp = splitmix64(&state);
    memcpy(G.payload, &stamp, size < 8 ? size : 8);
    return G.payload;
}

static uint32_t edge_payload_size(uint64_t i)
{
    uint32_t size = EDGE(EDGE_PAYLOAD_SIZE, i);
    return size < G.payload_max ? size : G.payload_max;
}

static uint32_t random_payload_size(void)
{
    /* Mostly small, like real traffic (pings, invs, txs), sometimes up to the cap. */
    uint64_t r = rnd() % 100;
    uint32_t cap = r < 70 ? 300 : r < 95 ? 4096 : G.payload_max;
    if (cap > G.payload_max)
        cap = G.payload_max;
    return (uint32_t)(rnd() % ((uint64_t)cap + 1));
}

static const char *random_addr(void)
{
    snprintf(G.addr_buf, sizeof(G.addr_buf), "%u.%u.%u.%u:%u", (unsigned)rnd_range(1, 223),
             (unsigned)rnd_range(0, 255), (unsigned)rnd_range(0, 255),
             (unsigned)rnd_range(1, 254), (unsigned)rnd_range(1024, 65535));
    return G.addr_buf;
}

/* --malformed: every third call of the affected tracepoints gets invalid UTF-8. */
static const char *maybe_malformed(uint64_t i, const char *normal)
{
    if (G.malformed && i % 3 == 2)
        return MALFORMED[(i / 3) % N_OF(MALFORMED)];
    return normal;
}

typedef void (*gen_fn)(uint64_t i);

static void gen_message(uint64_t i, bool inbound)
{
    int64_t peer_id;
    const char *addr, *conn_type, *msg_type;
    uint32_t size;
    if (G.random) {
        peer_id = rnd_range(0, 9999);
        addr = random_addr();
        conn_type = CONN_TYPES[rnd() % N_REAL_CONN_TYPES];
        msg_type = RND_PICK(REAL_MSG_TYPES);
        size = random_payload_size();
    } else {
        peer_id = EDGE(EDGE_PEER_ID, i);
        addr = EDGE(EDGE_ADDR, i);
        conn_type = EDGE(CONN_TYPES, i);
        msg_type = EDGE(EDGE_MSG_TYPE, i);
        size = edge_payload_size(i);
    }
    const unsigned char *payload = next_payload(size);
    if (inbound)
        fire_net_inbound_message(peer_id, addr, conn_type, msg_type, size, payload);
    else
        fire_net_outbound_message(peer_id, addr, conn_type, msg_type, size, payload);
}

static void gen_net_inbound_message(uint64_t i)
{
    gen_message(i, true);
}

static void gen_net_outbound_message(uint64_t i)
{
    gen_message(i, false);
}

/* Which of the four connection tracepoints with the (id, addr, type, network, N) shape: N
 * is a uint64 count for inbound/outbound, int64 epoch seconds for evicted/closed. */
enum conn_kind { CONN_INBOUND, CONN_OUTBOUND, CONN_EVICTED, CONN_CLOSED };

static void gen_connection(uint64_t i, enum conn_kind kind)
{
    int64_t peer_id;
    const char *addr, *conn_type;
    uint32_t network;
    uint64_t count;       /* existing connections (inbound/outbound) */
    int64_t established; /* time established in epoch seconds (evicted/closed) */
    if (G.random) {
        peer_id = rnd_range(0, 9999);
        addr = random_addr();
        conn_type = kind == CONN_INBOUND || kind == CONN_EVICTED
                        ? "inbound"
                        : CONN_TYPES[1 + rnd() % (N_REAL_CONN_TYPES - 1)];
        network = (uint32_t)rnd_range(0, 6);
        count = (uint64_t)rnd_range(1, 125);
        established = rnd_range(1700000000, 1800000000);
    } else {
        peer_id = EDGE(EDGE_PEER_ID, i);
        addr = EDGE(EDGE_ADDR, i);
        conn_type = EDGE(CONN_TYPES, i);
        network = EDGE(EDGE_NETWORK, i);
        count = EDGE(EDGE_U64, i);
        established = EDGE(EDGE_EPOCH_I64, i);
    }
    switch (kind) {
    case CONN_INBOUND:
        fire_net_inbound_connection(peer_id, addr, conn_type, network, count);
        break;
    case CONN_OUTBOUND:
        fire_net_outbound_connection(peer_id, addr, conn_type, network, count);
        break;
    case CONN_EVICTED:
        fire_net_evicted_inbound_connection(peer_id, addr, conn_type, network, established);
        break;
    case CONN_CLOSED:
        fire_net_closed_connection(peer_id, addr, conn_type, network, established);
        break;
    }
}

static void gen_net_inbound_connection(uint64_t i)
{
    gen_connection(i, CONN_INBOUND);
}

static void gen_net_outbound_connection(uint64_t i)
{
    gen_connection(i, CONN_OUTBOUND);
}

static void gen_net_evicted_inbound_connection(uint64_t i)
{
    gen_connection(i, CONN_EVICTED);
}

static void gen_net_closed_connection(uint64_t i)
{
    gen_connection(i, CONN_CLOSED);
}

static void gen_net_misbehaving_connection(uint64_t i)
{
    if (G.random)
        fire_net_misbehaving_connection(rnd_range(0, 9999),
                                        maybe_malformed(i, RND_PICK(REAL_MISBEHAVING_REASONS)));
    else
        fire_net_misbehaving_connection(EDGE(EDGE_PEER_ID, i),
                                        maybe_malformed(i, EDGE(EDGE_MISBEHAVING, i)));
}

static void gen_validation_block_connected(uint64_t i)
{
    unsigned char hash[TB_HASH_BYTES];
    next_hash(hash);
    if (G.random)
        fire_validation_block_connected(hash, (int32_t)rnd_range(0, 1000000),
                                        (uint64_t)rnd_range(1, 5000),
                                        (int32_t)rnd_range(1, 20000), rnd_range(0, 80000),
                                        rnd_range(100000, 10000000000));
    else
        fire_validation_block_connected(hash, EDGE(EDGE_I32, i), EDGE(EDGE_U64, i),
                                        EDGE(EDGE_I32, i + 1), EDGE(EDGE_I64, i + 1),
                                        EDGE(EDGE_I64, i + 2));
}

static void gen_utxocache_flush(uint64_t i)
{
    if (G.random)
        fire_utxocache_flush(rnd_range(0, 10000000), (uint32_t)rnd_range(0, 4),
                             (uint64_t)rnd_range(0, 100000000),
                             (uint64_t)rnd_range(0, 10000000000), rnd_bool());
    else
        fire_utxocache_flush(EDGE(EDGE_I64, i), EDGE(EDGE_FLUSH_MODE, i), EDGE(EDGE_U64, i),
                             EDGE(EDGE_U64, i + 1), i % 2 == 1);
}

static void gen_utxo(uint64_t i, enum tb_tp_id id)
{
    unsigned char txid[TB_HASH_BYTES];
    uint32_t index, height;
    int64_t value;
    bool coinbase;
    next_hash(txid);
    if (G.random) {
        index = (uint32_t)rnd_range(0, 1000);
        height = (uint32_t)rnd_range(0, 1000000);
        value = rnd_range(0, 2100000000000000);
        coinbase = rnd() % 10 == 0;
    } else {
        index = EDGE(EDGE_U32, i);
        height = EDGE(EDGE_U32, i + 1);
        value = EDGE(EDGE_I64, i);
        coinbase = i % 2 == 1;
    }
    if (id == TB_ID(utxocache, add))
        fire_utxocache_add(txid, index, height, value, coinbase);
    else if (id == TB_ID(utxocache, spent))
        fire_utxocache_spent(txid, index, height, value, coinbase);
    else
        fire_utxocache_uncache(txid, index, height, value, coinbase);
}

static void gen_utxocache_add(uint64_t i)
{
    gen_utxo(i, TB_ID(utxocache, add));
}

static void gen_utxocache_spent(uint64_t i)
{
    gen_utxo(i, TB_ID(utxocache, spent));
}

static void gen_utxocache_uncache(uint64_t i)
{
    gen_utxo(i, TB_ID(utxocache, uncache));
}

static void gen_mempool_added(uint64_t i)
{
    unsigned char txid[TB_HASH_BYTES];
    next_hash(txid);
    if (G.random)
        fire_mempool_added(txid, (int32_t)rnd_range(60, 100000), rnd_range(0, 10000000));
    else
        fire_mempool_added(txid, EDGE(EDGE_I32, i), EDGE(EDGE_I64, i));
}

static void gen_mempool_removed(uint64_t i)
{
    unsigned char txid[TB_HASH_BYTES];
    next_hash(txid);
    if (G.random)
        fire_mempool_removed(txid, REMOVAL_REASONS[rnd() % N_REAL_REMOVAL_REASONS],
                             (int32_t)rnd_range(60, 100000), rnd_range(0, 10000000),
                             (uint64_t)rnd_range(1700000000, 1800000000));
    else
        fire_mempool_removed(txid, EDGE(REMOVAL_REASONS, i), EDGE(EDGE_I32, i),
                             EDGE(EDGE_I64, i), EDGE(EDGE_EPOCH, i));
}

static void gen_mempool_replaced(uint64_t i)
{
    unsigned char replaced[TB_HASH_BYTES], replacement[TB_HASH_BYTES];
    next_hash(replaced);
    next_hash(replacement);
    if (G.random)
        fire_mempool_replaced(replaced, (int32_t)rnd_range(60, 100000), rnd_range(0, 10000000),
                              (uint64_t)rnd_range(1700000000, 1800000000), replacement,
                              (int32_t)rnd_range(60, 100000), rnd_range(0, 20000000),
                              rnd() % 4 != 0);
    else
        fire_mempool_replaced(replaced, EDGE(EDGE_I32, i), EDGE(EDGE_I64, i), EDGE(EDGE_EPOCH, i),
                              replacement, EDGE(EDGE_I32, i + 1), EDGE(EDGE_I64, i + 1),
                              i % 2 == 0);
}

static void gen_mempool_rejected(uint64_t i)
{
    unsigned char txid[TB_HASH_BYTES];
    next_hash(txid);
    const char *reason = G.random ? RND_PICK(REAL_REJECT_REASONS) : EDGE(EDGE_REJECT, i);
    fire_mempool_rejected(txid, maybe_malformed(i, reason));
}

#ifndef TB_NO_WALLET
/* Coin selection algorithms (GetAlgorithmName) plus an unknown one. */
static const char *const ALGORITHMS[] = {"bnb", "knapsack", "srd", "cg", "manual", "unknown-algo"};
#define N_REAL_ALGORITHMS 5
static const char *const REAL_WALLETS[] = {"", "normal", "hot", "wallét-€", "cold storage"};
/* change position: -1 means no change output. */
static const int32_t EDGE_CHANGE_POS[] = {-1, 0, 1, 5, INT32_MAX};

static const char *wallet_name(uint64_t i)
{
    return maybe_malformed(i, G.random ? RND_PICK(REAL_WALLETS) : EDGE(EDGE_WALLET, i));
}

static void gen_coin_selection_selected_coins(uint64_t i)
{
    const char *wallet = wallet_name(i);
    if (G.random) {
        int64_t target = rnd_range(1, 1000000000);
        fire_coin_selection_selected_coins(wallet, ALGORITHMS[rnd() % N_REAL_ALGORITHMS], target,
                                           rnd_range(-1000000, 1000000),
                                           target + rnd_range(0, 100000000));
    } else {
        fire_coin_selection_selected_coins(wallet, EDGE(ALGORITHMS, i), EDGE(EDGE_I64, i),
                                           EDGE(EDGE_I64, i + 1), EDGE(EDGE_I64, i + 2));
    }
}

static void gen_coin_selection_normal_create_tx_internal(uint64_t i)
{
    const char *wallet = wallet_name(i);
    if (G.random) {
        bool success = rnd() % 8 != 0;
        fire_coin_selection_normal_create_tx_internal(wallet, success,
                                                      success ? rnd_range(100, 100000) : 0,
                                                      success ? (int32_t)rnd_range(-1, 3) : -1);
    } else {
        fire_coin_selection_normal_create_tx_internal(wallet, i % 2 == 0, EDGE(EDGE_I64, i),
                                                      EDGE(EDGE_CHANGE_POS, i));
    }
}

static void gen_coin_selection_attempting_aps_create_tx(uint64_t i)
{
    fire_coin_selection_attempting_aps_create_tx(wallet_name(i));
}

static void gen_coin_selection_aps_create_tx_internal(uint64_t i)
{
    const char *wallet = wallet_name(i);
    if (G.random) {
        bool success = rnd() % 8 != 0;
        fire_coin_selection_aps_create_tx_internal(wallet, rnd_bool(), success,
                                                   success ? rnd_range(100, 100000) : 0,
                                                   success ? (int32_t)rnd_range(-1, 3) : -1);
    } else {
        /* Both bools in all four combinations over four calls. */
        fire_coin_selection_aps_create_tx_internal(wallet, i % 2 == 0, (i / 2) % 2 == 0,
                                                   EDGE(EDGE_I64, i), EDGE(EDGE_CHANGE_POS, i));
    }
}
#endif /* TB_NO_WALLET */

static const gen_fn tb_gen[TB_NUM_TP] = {
#define TB_X_GEN(c, e) gen_##c##_##e,
    TB_ALL_TRACEPOINTS(TB_X_GEN)
#undef TB_X_GEN
};

/* ------------------------------------------------------------------------------------
 * Options, signals, clocks.
 * ------------------------------------------------------------------------------------ */

enum mode { MODE_MIXED, MODE_PING };

typedef struct {
    double rate;    /* pings per second; 0 = unlimited */
    double seconds; /* planned duration */
    uint64_t pings;
    uint64_t events_fired;
    double elapsed_s;
    uint64_t thread_cpu_ns;
} stage_t;

#define TB_MAX_STAGES 64
#define TB_DEFAULT_STAGES "1000:2,10000:2,100000:2,0:2"

static struct {
    enum mode mode;
    uint64_t count;
    bool loop;
    double rate;
    bool random;
    uint64_t seed;
    uint32_t payload_max;
    bool malformed;
    bool wait_start;
    bool exit_with_parent;
    const char *record_path;
    const char *report_path;
    bool selected[TB_NUM_TP];
    size_t n_selected;
    stage_t stages[TB_MAX_STAGES];
    size_t n_stages;
} opt;

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_go;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Polls for the parent going away (re-parenting changes getppid()) and then stops the
 * node the way SIGTERM does, so the report still says what fired. A thread rather than
 * PR_SET_PDEATHSIG: that fires when the *thread* that forked exits, and harnesses
 * start nodes from worker threads. */
static pid_t g_parent;

static void *watch_parent(void *unused)
{
    (void)unused;
    const struct timespec period = {0, 200 * 1000 * 1000};
    while (getppid() == g_parent)
        nanosleep(&period, NULL);
    kill(getpid(), SIGTERM);
    return NULL;
}

static void on_go(int sig)
{
    (void)sig;
    g_go = 1;
}

#define NS_PER_S 1000000000LL
/* Pacing granularity: fire the events due, then sleep to the next 1 ms tick, so CPU
 * time measures the work rather than a busy-wait. */
#define TB_TICK_NS 1000000LL

static int64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_until(int64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = deadline_ns / NS_PER_S, .tv_nsec = deadline_ns % NS_PER_S};
    /* EINTR (a signal) just returns early; the callers re-check g_stop and the clock. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* When to wake up a paced loop that has fired `done` events since t0 at `rate` per second:
 * when the next event falls due, but no sooner than the next 1 ms tick. At high rates
 * that batches ~rate/1000 events per wakeup; at low rates it sleeps right through to the
 * next event instead of waking every tick for nothing. */
static int64_t next_wakeup(int64_t t0, int64_t now, uint64_t done, double rate)
{
    int64_t due = t0 + (int64_t)((double)done / rate * (double)NS_PER_S);
    int64_t tick = now + TB_TICK_NS - (now - t0) % TB_TICK_NS;
    return due > tick ? due : tick;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: usdt_node [options]\n"
            "Fire Bitcoin Core's USDT tracepoints (semaphore-gated) for testing tracers.\n"
            "  --tracepoints LIST  comma-separated fnmatch globs over context:event (default *)\n"
            "  --mode mixed|ping   default mixed\n"
            "  --count N           mixed: rounds; each round fires every selected tracepoint once"
            " (default 10)\n"
            "  --loop              mixed: repeat until SIGINT/SIGTERM\n"
            "  --rate R            mixed: total events/s, 0 = flat out (default 0)\n"
            "  --stages S          ping: rate:seconds,... rate in pings/s, 0 = unlimited\n"
            "                      (default " TB_DEFAULT_STAGES ")\n"
            "  --values edge|random  argument values (default edge)\n"
            "  --seed N            seed for --values random (default 1)\n"
            "  --payload-max N     largest P2P payload in mixed mode (default 4096, max 4000000)\n"
            "  --record FILE       one JSON line per fired event with the exact values\n"
            "  --malformed         mixed: every 3rd wallet name, misbehaving reason and rejected\n"
            "                      reason is invalid UTF-8\n"
            "  --wait-start        after READY, fire nothing until SIGUSR1\n"
            "  --exit-with-parent  stop as on SIGTERM once the process that started this one\n"
            "                      is gone (a crashed harness must not leave a node firing)\n"
            "  --report FILE       JSON report at exit (default stdout; READY then goes to stdout,\n"
            "                      otherwise to stderr)\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (*s == '\0' || *s == '-')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool parse_nonneg_double(const char *s, const char *stop_chars, double *out,
                                const char **rest)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0.0) || v > 1e15 ||
        (*end != '\0' && strchr(stop_chars, *end) == NULL))
        return false;
    *out = v;
    if (rest != NULL)
        *rest = end;
    return true;
}

static bool parse_stages(const char *s)
{
    opt.n_stages = 0;
    const char *p = s;
    while (*p != '\0') {
        if (opt.n_stages == TB_MAX_STAGES)
            return false;
        stage_t *st = &opt.stages[opt.n_stages];
        memset(st, 0, sizeof(*st));
        if (!parse_nonneg_double(p, ":", &st->rate, &p) || *p != ':')
            return false;
        if (!parse_nonneg_double(p + 1, ",", &st->seconds, &p))
            return false;
        opt.n_stages++;
        if (*p == ',')
            p++;
    }
    return opt.n_stages > 0;
}

static bool select_tracepoints(const char *list)
{
    char *copy = strdup(list);
    if (copy == NULL)
        return false;
    memset(opt.selected, 0, sizeof(opt.selected));
    char *save = NULL;
    for (char *pat = strtok_r(copy, ",", &save); pat != NULL; pat = strtok_r(NULL, ",", &save)) {
        bool matched = false;
        for (int id = 0; id < TB_NUM_TP; id++) {
            if (fnmatch(pat, tb_tp_names[id], 0) == 0) {
                opt.selected[id] = true;
                matched = true;
            }
        }
        /* Not an error: a wallet-less build legitimately lacks coin_selection:*. */
        if (!matched)
            fprintf(stderr, "usdt_node: warning: '%s' matches no tracepoint in this build\n", pat);
    }
    free(copy);
    opt.n_selected = 0;
    for (int id = 0; id < TB_NUM_TP; id++)
        opt.n_selected += opt.selected[id];
    return opt.n_selected > 0;
}

static int parse_args(int argc, char **argv)
{
    enum { O_TP = 256, O_MODE, O_COUNT, O_LOOP, O_RATE, O_STAGES, O_VALUES, O_SEED, O_PMAX,
           O_RECORD, O_MALFORMED, O_WAIT, O_PARENT, O_REPORT, O_HELP };
    static const struct option longopts[] = {
        {"tracepoints", required_argument, NULL, O_TP},
        {"mode", required_argument, NULL, O_MODE},
        {"count", required_argument, NULL, O_COUNT},
        {"loop", no_argument, NULL, O_LOOP},
        {"rate", required_argument, NULL, O_RATE},
        {"stages", required_argument, NULL, O_STAGES},
        {"values", required_argument, NULL, O_VALUES},
        {"seed", required_argument, NULL, O_SEED},
        {"payload-max", required_argument, NULL, O_PMAX},
        {"record", required_argument, NULL, O_RECORD},
        {"malformed", no_argument, NULL, O_MALFORMED},
        {"wait-start", no_argument, NULL, O_WAIT},
        {"exit-with-parent", no_argument, NULL, O_PARENT},
        {"report", required_argument, NULL, O_REPORT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *tracepoints = "*";
    const char *stages = TB_DEFAULT_STAGES;
    uint64_t u;
    opt.mode = MODE_MIXED;
    opt.count = 10;
    opt.seed = 1;
    opt.payload_max = TB_DEFAULT_PAYLOAD_MAX;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_TP:
            tracepoints = optarg;
            break;
        case O_MODE:
            if (strcmp(optarg, "mixed") == 0)
                opt.mode = MODE_MIXED;
            else if (strcmp(optarg, "ping") == 0)
                opt.mode = MODE_PING;
            else
                return fprintf(stderr, "usdt_node: --mode must be mixed or ping\n"), 2;
            break;
        case O_COUNT:
            if (!parse_u64(optarg, &opt.count))
                return fprintf(stderr, "usdt_node: bad --count '%s'\n", optarg), 2;
            break;
        case O_LOOP:
            opt.loop = true;
            break;
        case O_RATE:
            if (!parse_nonneg_double(optarg, "", &opt.rate, NULL))
                return fprintf(stderr, "usdt_node: bad --rate '%s'\n", optarg), 2;
            break;
        case O_STAGES:
            stages = optarg;
            break;
        case O_VALUES:
            if (strcmp(optarg, "edge") == 0)
                opt.random = false;
            else if (strcmp(optarg, "random") == 0)
                opt.random = true;
            else
                return fprintf(stderr, "usdt_node: --values must be edge or random\n"), 2;
            break;
        case O_SEED:
            if (!parse_u64(optarg, &opt.seed))
                return fprintf(stderr, "usdt_node: bad --seed '%s'\n", optarg), 2;
            break;
        case O_PMAX:
            if (!parse_u64(optarg, &u) || u > TB_MAX_PAYLOAD)
                return fprintf(stderr, "usdt_node: --payload-max must be 0..%u\n", TB_MAX_PAYLOAD),
                       2;
            opt.payload_max = (uint32_t)u;
            break;
        case O_RECORD:
            opt.record_path = optarg;
            break;
        case O_MALFORMED:
            opt.malformed = true;
            break;
        case O_WAIT:
            opt.wait_start = true;
            break;
        case O_PARENT:
            opt.exit_with_parent = true;
            break;
        case O_REPORT:
            opt.report_path = optarg;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc)
        return fprintf(stderr, "usdt_node: unexpected argument '%s'\n", argv[optind]), 2;
    if (!select_tracepoints(tracepoints))
        return fprintf(stderr, "usdt_node: --tracepoints '%s' selects nothing\n", tracepoints), 2;
    if (!parse_stages(stages))
        return fprintf(stderr, "usdt_node: bad --stages '%s' (want rate:seconds,...)\n", stages),
               2;
    return 0;
}

/* ------------------------------------------------------------------------------------
 * The two modes. Both run on this one thread, as Core's msghand thread would.
 * ------------------------------------------------------------------------------------ */

static void run_mixed(void)
{
    enum tb_tp_id order[TB_NUM_TP];
    size_t n = 0;
    for (int id = 0; id < TB_NUM_TP; id++)
        if (opt.selected[id])
            order[n++] = (enum tb_tp_id)id;
    /* Saturate: --count 2^64-1 times 20 tracepoints is "forever" anyway. */
    uint64_t total = opt.loop || opt.count > UINT64_MAX / n ? UINT64_MAX : opt.count * n;
    const int64_t t0 = now_ns(CLOCK_MONOTONIC);
    uint64_t done = 0;
    while (done < total && !g_stop) {
        uint64_t due = total;
        if (opt.rate > 0) {
            double elapsed = (double)(now_ns(CLOCK_MONOTONIC) - t0) / (double)NS_PER_S;
            double want = opt.rate * elapsed + 1.0;
            due = want < (double)total ? (uint64_t)want : total;
        }
        for (; done < due && !g_stop; done++)
            tb_gen[order[done % n]](done / n);
        if (opt.rate > 0 && done < total && !g_stop)
            sleep_until(next_wakeup(t0, now_ns(CLOCK_MONOTONIC), done, opt.rate));
    }
}

/* One ping: the peer's "ping" arrives, the node answers "pong" with the same nonce. Like
 * Core, values come from the peer's state; nothing is computed for the probe. */
#define PING_PEER_ID 7
#define PING_ADDR "127.0.0.1:18444" /* regtest P2P port */
#define PING_NONCE_BYTES 8          /* BIP31: ping/pong payload is a uint64 nonce */
/* Pings between clock reads when flat out: 64 pings = 128 hits, ~0.1 ms with a cheap
 * tracer attached, so a stage overshoots its planned length by well under 1%. */
#define PING_CHECK_EVERY 64
/* Cap on one catch-up burst when a paced stage falls behind, so the end is still seen. */
#define PING_MAX_BURST 4096

static unsigned char ping_payload[PING_NONCE_BYTES];

static inline void ping_once(uint64_t nonce)
{
    memcpy(ping_payload, &nonce, sizeof(nonce));
    fire_net_inbound_message(PING_PEER_ID, PING_ADDR, "inbound", "ping", PING_NONCE_BYTES,
                             ping_payload);
    fire_net_outbound_message(PING_PEER_ID, PING_ADDR, "inbound", "pong", PING_NONCE_BYTES,
                              ping_payload);
}

/* Returns how many stages ran (the last one possibly cut short by a signal). */
static size_t run_ping(void)
{
    uint64_t nonce = 0;
    size_t s = 0;
    for (; s < opt.n_stages && !g_stop; s++) {
        stage_t *st = &opt.stages[s];
        const uint64_t fired0 =
            tb_fired[TB_ID(net, inbound_message)] + tb_fired[TB_ID(net, outbound_message)];
        const int64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        const int64_t t0 = now_ns(CLOCK_MONOTONIC);
        const int64_t end = t0 + (int64_t)(st->seconds * (double)NS_PER_S);
        int64_t now = t0;
        uint64_t pings = 0;
        if (st->rate <= 0) {
            while (!g_stop && now < end) {
                for (int k = 0; k < PING_CHECK_EVERY; k++)
                    ping_once(nonce++);
                pings += PING_CHECK_EVERY;
                now = now_ns(CLOCK_MONOTONIC);
            }
        } else {
            while (!g_stop && now < end) {
                double want = st->rate * (double)(now - t0) / (double)NS_PER_S + 1.0;
                uint64_t due = (uint64_t)want;
                uint64_t burst = due > pings ? due - pings : 0;
                if (burst > PING_MAX_BURST)
                    burst = PING_MAX_BURST;
                for (uint64_t k = 0; k < burst && !g_stop; k++, pings++)
                    ping_once(nonce++);
                if (pings >= due)
                    sleep_until(next_wakeup(t0, now, pings, st->rate));
                now = now_ns(CLOCK_MONOTONIC);
            }
        }
        st->pings = pings;
        st->elapsed_s = (double)(now_ns(CLOCK_MONOTONIC) - t0) / (double)NS_PER_S;
        st->thread_cpu_ns = (uint64_t)(now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0);
        st->events_fired =
            tb_fired[TB_ID(net, inbound_message)] + tb_fired[TB_ID(net, outbound_message)] -
            fired0;
    }
    return s;
}

/* ------------------------------------------------------------------------------------
 * Report.
 * ------------------------------------------------------------------------------------ */

static void write_counts(FILE *out, const char *key, const uint64_t *counts)
{
    fprintf(out, "  \"%s\": {", key);
    for (int id = 0; id < TB_NUM_TP; id++)
        fprintf(out, "%s\n    \"%s\": %" PRIu64, id ? "," : "", tb_tp_names[id], counts[id]);
    fputs("\n  },\n", out);
}

static int write_report(double elapsed_s, size_t stages_run)
{
    FILE *out = opt.report_path ? fopen(opt.report_path, "w") : stdout;
    if (out == NULL) {
        fprintf(stderr, "usdt_node: cannot write report %s: %s\n", opt.report_path,
                strerror(errno));
        return 1;
    }
    fprintf(out, "{\n  \"pid\": %ld,\n  \"mode\": \"%s\",\n", (long)getpid(),
            opt.mode == MODE_PING ? "ping" : "mixed");
    fprintf(out, "  \"values\": \"%s\",\n  \"seed\": %" PRIu64 ",\n",
            opt.random ? "random" : "edge", opt.seed);
#ifdef TB_NO_WALLET
    fputs("  \"wallet\": false,\n", out);
#else
    fputs("  \"wallet\": true,\n", out);
#endif
    fputs("  \"selected\": [", out);
    bool first = true;
    for (int id = 0; id < TB_NUM_TP; id++) {
        if (opt.selected[id]) {
            fprintf(out, "%s\"%s\"", first ? "" : ", ", tb_tp_names[id]);
            first = false;
        }
    }
    fprintf(out, "],\n  \"interrupted\": %s,\n", g_stop ? "true" : "false");
    write_counts(out, "fired", tb_fired);
    write_counts(out, "hits", tb_hits);
    double cpu_s = (double)now_ns(CLOCK_PROCESS_CPUTIME_ID) / (double)NS_PER_S;
    fprintf(out, "  \"elapsed_s\": %.9f,\n  \"cpu_s\": %.9f,\n  \"stages\": [", elapsed_s, cpu_s);
    for (size_t s = 0; s < stages_run; s++) {
        const stage_t *st = &opt.stages[s];
        uint64_t hits = 2 * st->pings;
        fprintf(out,
                "%s\n    {\"rate\": %.17g, \"seconds\": %.17g, \"pings\": %" PRIu64
                ", \"hits\": %" PRIu64 ", \"events_fired\": %" PRIu64
                ", \"elapsed_s\": %.9f, \"thread_cpu_ns\": %" PRIu64 ", \"cpu_ns_per_hit\": ",
                s ? "," : "", st->rate, st->seconds, st->pings, hits, st->events_fired,
                st->elapsed_s, st->thread_cpu_ns);
        if (hits > 0)
            fprintf(out, "%.3f}", (double)st->thread_cpu_ns / (double)hits);
        else
            fputs("null}", out);
    }
    fputs(stages_run ? "\n  ]\n}\n" : "]\n}\n", out);
    int rc = 0;
    if (fflush(out) != 0 || ferror(out))
        rc = 1;
    if (opt.report_path && fclose(out) != 0)
        rc = 1;
    return rc;
}

int main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc != 0)
        return rc;

    /* Block the control signals until we are ready to wait for them, so a SIGUSR1 sent
     * right after READY can never be lost between the print and the wait. */
    sigset_t ctl, old;
    sigemptyset(&ctl);
    sigaddset(&ctl, SIGUSR1);
    sigaddset(&ctl, SIGINT);
    sigaddset(&ctl, SIGTERM);
    sigprocmask(SIG_BLOCK, &ctl, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_go;
    sigaction(SIGUSR1, &sa, NULL);

    if (opt.exit_with_parent) {
        /* Created with the control signals blocked, so SIGTERM reaches the main thread. */
        g_parent = getppid();
        pthread_t watcher;
        if (pthread_create(&watcher, NULL, watch_parent, NULL) != 0) {
            fprintf(stderr, "usdt_node: cannot start the --exit-with-parent watcher\n");
            return 1;
        }
        pthread_detach(watcher);
    }

    init_tables();
    G.random = opt.random;
    G.malformed = opt.malformed;
    G.payload_max = opt.payload_max;
    G.rng = opt.seed;
    G.hash_base = opt.random ? splitmix64(&(uint64_t){opt.seed ^ 0x5eedULL}) : 0;
    /* +1 so a zero-length payload still gets a valid, non-NULL pointer, as Core passes. */
    G.payload = malloc((size_t)opt.payload_max + 1);
    if (G.payload == NULL) {
        fprintf(stderr, "usdt_node: out of memory\n");
        return 1;
    }
    for (size_t j = 0; j <= opt.payload_max; j++)
        G.payload[j] = (unsigned char)(j * 131 + 17);

    if (opt.record_path != NULL) {
        tb_rec = fopen(opt.record_path, "w");
        if (tb_rec == NULL) {
            fprintf(stderr, "usdt_node: cannot open --record %s: %s\n", opt.record_path,
                    strerror(errno));
            return 1;
        }
        setvbuf(tb_rec, NULL, _IOFBF, TB_REC_BUFFER_BYTES);
    }

    FILE *ready = opt.report_path ? stdout : stderr;
    fprintf(ready, "READY pid=%ld\n", (long)getpid());
    fflush(ready);

    if (opt.wait_start) {
        sigset_t wait_mask = old;
        sigdelset(&wait_mask, SIGUSR1);
        sigdelset(&wait_mask, SIGINT);
        sigdelset(&wait_mask, SIGTERM);
        while (!g_go && !g_stop)
            sigsuspend(&wait_mask);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);

    const int64_t t0 = now_ns(CLOCK_MONOTONIC);
    size_t stages_run = 0;
    if (!g_stop) {
        if (opt.mode == MODE_PING) {
            stages_run = run_ping();
        } else {
            run_mixed();
        }
    }
    double elapsed_s = (double)(now_ns(CLOCK_MONOTONIC) - t0) / (double)NS_PER_S;

    rc = 0;
    if (tb_rec != NULL && fclose(tb_rec) != 0) {
        fprintf(stderr, "usdt_node: writing --record failed: %s\n", strerror(errno));
        rc = 1;
    }
    if (write_report(elapsed_s, stages_run) != 0)
        rc = 1;
    free(G.payload);
    return rc;
}
