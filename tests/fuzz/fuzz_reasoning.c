/* libFuzzer target: splitting chat replies into reasoning and answer (srv_reasoning).
 * Byte 0 says whether the prompt opened the think block, bytes 1-4 how the reply is cut
 * into stream feeds; the rest is the reply. The streamed split must equal the whole one,
 * byte for byte; the reasoning never holds </think> and the answer never starts with
 * whitespace; every byte of each part is a byte of the reply, in order. */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "fz_util.h"
#include "server/srv_reasoning.h"

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    bool opened = fz_u8(&in) & 1;
    uint32_t cut_state = fz_u32(&in);
    const char *text = (const char *)in.p;
    size_t len = in.n;

    size_t r_off, r_len, c_off, c_len;
    srv_reason_split(opened, text, len, &r_off, &r_len, &c_off, &c_len);
    if (r_off + r_len > len || c_off + c_len != len || (r_len && r_off + r_len > c_off))
        fz_fail("parts out of the reply: reasoning [%zu,+%zu) answer [%zu,+%zu) of %zu", r_off, r_len, c_off, c_len, len);
    if (c_len && is_ws(text[c_off])) fz_fail("the answer starts with whitespace");
    if (r_len && memmem(text + r_off, r_len, SRV_REASON_CLOSE, strlen(SRV_REASON_CLOSE)))
        fz_fail("the reasoning holds </think>");

    srv_buf r = {.max = (size_t)1 << 30}, c = {.max = (size_t)1 << 30};
    srv_reason_stream rs;
    srv_reason_stream_init(&rs, opened);
    size_t pos = 0;
    while (pos < len) {
        cut_state = cut_state * 1103515245u + 12345u;
        size_t piece = (cut_state >> 16) % 12; /* empty feeds too */
        if (piece > len - pos) piece = len - pos;
        if (!srv_reason_feed(&rs, text + pos, piece, &r, &c)) fz_fail("feed failed");
        pos += piece;
    }
    if (!srv_reason_finish(&rs, &r, &c)) fz_fail("finish failed");
    if (r.len != r_len || (r_len && memcmp(r.data, text + r_off, r_len) != 0))
        fz_fail("streamed reasoning (%zu bytes) differs from the whole split's (%zu bytes)", r.len, r_len);
    if (c.len != c_len || (c_len && memcmp(c.data, text + c_off, c_len) != 0))
        fz_fail("streamed answer (%zu bytes) differs from the whole split's (%zu bytes)", c.len, c_len);
    srv_buf_free(&r);
    srv_buf_free(&c);
    return 0;
}
