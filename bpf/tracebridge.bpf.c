/* tracebridge BPF program: one handler per enabled Bitcoin Core tracepoint.
 *
 * Every probe hit is numbered (seq) before anything can fail, so the user side can
 * prove completeness: a hit either reaches a ring buffer or is counted in tb_counters
 * as lost and reported in the next record's lost_before. Handlers are generated
 * (include/tracebridge_probes.gen.h); this file holds what they share.
 *
 * Compiled by BCC with these -D flags (bridge/sources/usdt/program.py sets them):
 *   TB_ENABLE_<EVENT>            compile the handler of each attached tracepoint
 *   TB_RING_PAGES_<SUBSYSTEM>    ring size in pages, a power of two
 *   TB_PAYLOAD_CAP               payload bytes captured per P2P message
 *   TB_PAYLOAD_MASK              2^k - 1 >= TB_PAYLOAD_CAP; bounds sizes for the verifier
 *   TB_SCRATCH_PERCPU            1 if the scratch record fits a per-CPU array (32 KiB)
 *   TB_NR_CPUS                   possible CPUs (scratch slots when not per-CPU)
 *   TB_RB_FLAGS                  BPF_RB_NO_WAKEUP (timer-polled consumer) or 0 (adaptive)
 *
 * Ring sizing: a record is 32 B of header + the fixed body (up to TB_MAX_FIXED_SIZE) +
 * the captured payload. The consumer drains every poll interval, so a ring must hold
 * rate x interval x record size with room for bursts (a block connect fires thousands
 * of utxocache events at once); the defaults in bridge/config.py show the arithmetic.
 */
#include <uapi/linux/ptrace.h>
#include "tracebridge_events.gen.h"

/* Per tracepoint: fired = probe hits (the last seq handed out); lost = ring-full
 * losses; pending = losses not yet reported in a record's lost_before. */
struct tb_counter {
    __u64 fired;
    __u64 lost;
    __u64 pending;
    __u64 reserved;
};
BPF_ARRAY(tb_counters, struct tb_counter, TB_MAX_TP_ID + 1);

/* Records are built in scratch space, not on the 512-byte stack: a P2P message record
 * with its payload is far bigger. */
struct tb_scratch {
    __u8 data[TB_MAX_FIXED_SIZE + TB_PAYLOAD_MASK + 1];
};
#if TB_SCRATCH_PERCPU
BPF_PERCPU_ARRAY(tb_scratch_map, struct tb_scratch, 1);
#else
BPF_ARRAY(tb_scratch_map, struct tb_scratch, TB_NR_CPUS);
#endif

static __always_inline void *tb_begin(__u32 tp_id)
{
    struct tb_counter *c = tb_counters.lookup(&tp_id);
    if (!c)
        return 0;
    __u64 seq = __sync_fetch_and_add(&c->fired, 1) + 1;
#if TB_SCRATCH_PERCPU
    __u32 slot = 0;
#else
    __u32 slot = bpf_get_smp_processor_id();
#endif
    struct tb_header *h = (void *)tb_scratch_map.lookup(&slot);
    if (!h) {
        /* Unreachable for an array map, but if it ever happens the hit is still counted. */
        __sync_fetch_and_add(&c->lost, 1);
        __sync_fetch_and_add(&c->pending, 1);
        return 0;
    }
    /* Scratch is reused: clear the fixed part so no bytes of an earlier event leak into
     * string padding. */
    __builtin_memset(h, 0, TB_MAX_FIXED_SIZE);
    h->seq = seq;
    h->ktime_ns = bpf_ktime_get_ns();
    h->tp_id = tp_id;
    return h;
}

/* Claim the pending loss count for a record about to be written. */
static __always_inline struct tb_counter *tb_claim(struct tb_header *h)
{
    __u32 tp_id = h->tp_id;
    struct tb_counter *c = tb_counters.lookup(&tp_id);
    if (c)
        h->lost_before = __sync_lock_test_and_set(&c->pending, 0);
    return c;
}

/* The ring was full: give the claimed count back, plus this record, so every hit is
 * accounted for exactly once. */
static __always_inline void tb_lost(struct tb_counter *c, struct tb_header *h)
{
    __sync_fetch_and_add(&c->lost, 1);
    __sync_fetch_and_add(&c->pending, h->lost_before + 1);
}

/* Never hand the ring more than the scratch record holds (the verifier insists). */
static __always_inline __u64 tb_bound(__u64 size)
{
    return size > sizeof(struct tb_scratch) ? sizeof(struct tb_scratch) : size;
}

/* Generated: ring buffers, tb_submit_<subsystem>(), and one handler per tracepoint. */
#include "tracebridge_probes.gen.h"
