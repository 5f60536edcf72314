/* Unicode helpers with the exact leniency of the reference tokenizer: UTF-8 is decoded by
 * structure only (a broken sequence becomes U+FFFD for one byte), White_Space is the fixed
 * set the reference uses, and the GPT-2 byte mapping turns every byte into a printable
 * character. Nothing here allocates except tok_utf8_to_cps; nothing reads past n. */
#include "tokenizer/tok_internal.h"

#include "base/mem.h"

size_t tok_utf8_lead_len(unsigned char lead) {
    static const uint8_t by_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_nibble[lead >> 4];
}

static bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t tok_utf8_next(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    size_t need = 0;
    uint32_t v = 0;
    if ((u[0] & 0xE0) == 0xC0) {
        need = 2;
        v = u[0] & 0x1F;
    } else if ((u[0] & 0xF0) == 0xE0) {
        need = 3;
        v = u[0] & 0x0F;
    } else if ((u[0] & 0xF8) == 0xF0) {
        need = 4;
        v = u[0] & 0x07;
    }
    if (need == 0 || need > n) {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i < need; i++) {
        if (!is_cont(u[i])) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (u[i] & 0x3F);
    }
    *cp = v > 0x10FFFF ? 0xFFFD : v;
    return need;
}

uint32_t *tok_utf8_to_cps(const char *s, size_t n, size_t *n_cps) {
    uint32_t *cps = mem_alloc_array(n ? n : 1, sizeof *cps);
    if (!cps) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) i += tok_utf8_next(s + i, n - i, &cps[k++]);
    *n_cps = k;
    return cps;
}

size_t tok_utf8_put(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool tok_is_whitespace(uint32_t cp) {
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20) return true;
    if (cp < 0x85) return false;
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

/* Bytes that are printable Latin-1 keep their code point; the other 68 get 256, 257, ...
 * in byte order. */
static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 256u + b;                 /* 0x00..0x20 -> 256..288 */
    if (b >= 0x7F && b <= 0xA0) return 289u + (b - 0x7Fu); /* -> 289..322 */
    return 323;                                     /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp <= 288) return (int)(cp - 256);
    if (cp <= 322) return (int)(cp - 289 + 0x7F);
    return cp == 323 ? 0xAD : -1;
}
