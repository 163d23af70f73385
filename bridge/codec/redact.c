/* Peer-address redaction (privacy.peer_addr), applied while a record is written.
 *
 * Why here: USDT records and IPC NetMessage batches are turned into Avro by this
 * encoder and nowhere else, so redacting in write_record() is the one place where no
 * address can slip past on its way to Kafka, whichever input path the record took.
 * bridge/privacy/reference.py is the specification in Python; tests/unit/privacy
 * requires this file to produce exactly its strings.
 *
 *   hash      "hmac-sha256=" + the first 16 bytes (32 hex) of HMAC-SHA256(key, host)
 *   truncate  IPv4 "a.b.c.0/24", IPv6 "[2001:db8:1::]/48" (RFC 5952 form), CJDNS
 *             (fc00::/8) "[fc00::]/8", other hosts "*.onion", "*.i2p" or "*"
 *   either    ":port" appended only with keep_port (inbound ports are ephemeral and,
 *             with a prefix, can single a peer out)
 *
 * The host is split from the port as Bitcoin Core writes m_addr_name: "[v6]:port",
 * "host:port", or a bare host. The HMAC states after the key's ipad/opad blocks are
 * kept, so a new address costs two or three SHA-256 compressions; a small cache of
 * recent addresses spares the rest (a peer sends many messages).
 */
#include <arpa/inet.h>
#include <stdio.h>

#include "native.h"

/* ------------------------------------------------------------------ SHA-256 */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static inline uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_compress(uint32_t h[8], const unsigned char *block)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
               (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

static void sha_init(Sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof(iv));
    s->total = 0;
    s->used = 0;
}

static void sha_update(Sha256 *s, const unsigned char *p, size_t len)
{
    s->total += len;
    while (len) {
        size_t take = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->buf + s->used, p, take);
        s->used += take;
        p += take;
        len -= take;
        if (s->used == 64) {
            sha_compress(s->h, s->buf);
            s->used = 0;
        }
    }
}

static void sha_final(Sha256 *s, unsigned char out[32])
{
    uint64_t bits = s->total * 8;
    unsigned char pad = 0x80;
    sha_update(s, &pad, 1);
    pad = 0;
    while (s->used != 56) sha_update(s, &pad, 1);
    unsigned char len_be[8];
    for (int i = 0; i < 8; i++) len_be[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha_update(s, len_be, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

void redaction_set_key(Redaction *red, const unsigned char *key, size_t len)
{
    unsigned char block[64] = {0};
    if (len > 64) { /* RFC 2104: a long key is hashed first */
        Sha256 s;
        sha_init(&s);
        sha_update(&s, key, len);
        sha_final(&s, block);
    } else if (len) {
        memcpy(block, key, len);
    }
    unsigned char pad[64];
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x36;
    sha_init(&red->inner);
    sha_update(&red->inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x5c;
    sha_init(&red->outer);
    sha_update(&red->outer, pad, 64);
    memset(block, 0, sizeof(block));
    memset(pad, 0, sizeof(pad));
}

static void hmac(const Redaction *red, const unsigned char *msg, size_t len, unsigned char out[32])
{
    Sha256 s = red->inner;
    unsigned char inner[32];
    sha_update(&s, msg, len);
    sha_final(&s, inner);
    s = red->outer;
    sha_update(&s, inner, 32);
    sha_final(&s, out);
}

/* ------------------------------------------------------------------ addresses */

static int is_port(const unsigned char *p, size_t len)
{
    if (len < 1 || len > 5) return 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return 1;
}

/* Host and port of m_addr_name; *port_len is 0 when it has none. */
static void split(const unsigned char *a, size_t len, const unsigned char **host, size_t *host_len,
                  const unsigned char **port, size_t *port_len)
{
    *host = a;
    *host_len = len;
    *port = NULL;
    *port_len = 0;
    if (len && a[0] == '[') {
        const unsigned char *end = memchr(a, ']', len);
        if (!end) return;
        size_t at = (size_t)(end - a);
        size_t rest = len - at - 1;
        if (rest == 0 || (a[at + 1] == ':' && is_port(a + at + 2, rest - 1))) {
            *host = a + 1;
            *host_len = at - 1;
            if (rest) {
                *port = a + at + 2;
                *port_len = rest - 1;
            }
        }
        return;
    }
    const unsigned char *colon = memchr(a, ':', len);
    if (!colon) return;
    size_t at = (size_t)(colon - a);
    if (memchr(colon + 1, ':', len - at - 1)) return; /* a bare IPv6 address: no port */
    if (is_port(a + at + 1, len - at - 1)) {
        *host_len = at;
        *port = a + at + 1;
        *port_len = len - at - 1;
    }
}

/* Dotted quad as Python's ipaddress takes it: 4 octets of 1-3 digits, no leading zero. */
static int parse_v4(const unsigned char *p, size_t len, unsigned char out[4])
{
    size_t i = 0;
    for (int octet = 0; octet < 4; octet++) {
        if (octet) {
            if (i >= len || p[i] != '.') return 0;
            i++;
        }
        size_t start = i;
        unsigned value = 0;
        while (i < len && p[i] >= '0' && p[i] <= '9' && i - start < 4) value = value * 10 + (p[i++] - '0');
        size_t digits = i - start;
        if (digits == 0 || digits > 3 || value > 255 || (digits > 1 && p[start] == '0')) return 0;
        out[octet] = (unsigned char)value;
    }
    return i == len;
}

static int parse_v6(const unsigned char *p, size_t len, unsigned char out[16])
{
    char text[64];
    if (len == 0 || len >= sizeof(text)) return 0;
    memcpy(text, p, len);
    text[len] = 0;
    if (memchr(text, 0, len)) return 0;
    return inet_pton(AF_INET6, text, out) == 1;
}

static void mask(unsigned char *addr, int bytes, int bits)
{
    for (int i = 0; i < bytes; i++) {
        int keep = bits - 8 * i;
        if (keep >= 8) continue;
        addr[i] &= keep <= 0 ? 0 : (unsigned char)(0xFF << (8 - keep));
    }
}

/* RFC 5952 text (as Python's ipaddress writes it): the longest run of two or more
 * zero groups, the first of equal runs, becomes "::". */
static size_t format_v6(const unsigned char a[16], char *o)
{
    unsigned groups[8];
    for (int i = 0; i < 8; i++) groups[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (groups[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && !groups[j]) j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    if (best_len < 2) best = -1;
    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            o[n++] = ':';
            if (i == 0) o[n++] = ':';
            i += best_len - 1;
            continue;
        }
        n += (size_t)sprintf(o + n, "%x", groups[i]);
        if (i < 7) o[n++] = ':';
    }
    return n;
}

static int ends_with(const unsigned char *p, size_t len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return len >= sl && memcmp(p + len - sl, suffix, sl) == 0;
}

static size_t compute(const Redaction *red, const unsigned char *a, size_t len, char *o)
{
    const unsigned char *host, *port;
    size_t host_len, port_len, n = 0;
    split(a, len, &host, &host_len, &port, &port_len);
    if (red->mode == REDACT_HASH) {
        static const char HEXDIGITS[] = "0123456789abcdef";
        unsigned char mac[32];
        hmac(red, host, host_len, mac);
        memcpy(o, "hmac-sha256=", 12);
        n = 12;
        for (int i = 0; i < 16; i++) {
            o[n++] = HEXDIGITS[mac[i] >> 4];
            o[n++] = HEXDIGITS[mac[i] & 15];
        }
    } else {
        unsigned char addr[16];
        if (parse_v4(host, host_len, addr)) {
            mask(addr, 4, red->v4_bits);
            n = (size_t)sprintf(o, "%u.%u.%u.%u/%d", addr[0], addr[1], addr[2], addr[3],
                                red->v4_bits);
        } else if (parse_v6(host, host_len, addr)) {
            int bits = red->v6_bits;
            if (addr[0] == 0xfc) bits = 8; /* CJDNS: the address is a key's hash; cut it */
            mask(addr, 16, bits);
            o[n++] = '[';
            n += format_v6(addr, o + n);
            n += (size_t)sprintf(o + n, "]/%d", bits);
        } else if (ends_with(host, host_len, ".onion")) {
            memcpy(o, "*.onion", 7);
            n = 7;
        } else if (ends_with(host, host_len, ".i2p")) {
            memcpy(o, "*.i2p", 5);
            n = 5;
        } else {
            o[n++] = '*';
        }
    }
    if (red->keep_port && port_len) {
        o[n++] = ':';
        memcpy(o + n, port, port_len);
        n += port_len;
    }
    return n;
}

size_t redact_address(Redaction *red, const unsigned char *a, size_t len, char *o)
{
    if (len == 0 || len > REDACT_CACHE_KEY_MAX) return compute(red, a, len, o);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ a[i]) * 16777619u;
    RedactCacheSet *set = &red->cache[h % REDACT_CACHE_SETS];
    for (int w = 0; w < REDACT_CACHE_WAYS; w++) {
        const RedactCacheEntry *e = &set->way[w];
        if (e->in_len == len && memcmp(e->in, a, len) == 0) {
            memcpy(o, e->out, e->out_len);
            return e->out_len;
        }
    }
    size_t n = compute(red, a, len, o);
    if (n <= REDACT_CACHE_OUT_MAX) {
        RedactCacheEntry *e = &set->way[set->next];
        set->next = (uint8_t)((set->next + 1) % REDACT_CACHE_WAYS);
        e->in_len = (uint8_t)len;
        memcpy(e->in, a, len);
        e->out_len = (uint8_t)n;
        memcpy(e->out, o, n);
    }
    return n;
}

int payload_withheld(const Redaction *red, const Value *type)
{
    for (int i = 0; i < red->n_types; i++)
        if (strlen(red->types[i]) == type->len && memcmp(red->types[i], type->p, type->len) == 0)
            return 1;
    return 0;
}
