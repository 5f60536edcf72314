/* Splitting chat replies into reasoning and answer (see srv_reasoning.h). Never lets a
 * byte of a marker, whole or partial, into either part. */
#define _GNU_SOURCE /* memmem */
#include "server/srv_reasoning.h"

#include <string.h>

#define OPEN_LEN (sizeof SRV_REASON_OPEN - 1)
#define CLOSE_LEN (sizeof SRV_REASON_CLOSE - 1)

enum { ST_START, ST_LEAD, ST_INSIDE, ST_TRIM, ST_ANSWER };

static const char *const reserved[] = {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"};

static int count_bytes(const char *buffer, size_t size, void *data) {
    (void)buffer;
    size_t *total = data;
    *total += size;
    return *total <= SRV_REASON_KWARGS_MAX_BYTES ? 0 : -1;
}

bool srv_reasoning_parse_request(const json_t *root, bool *none, const json_t **kwargs, srv_error *e) {
    *none = false;
    *kwargs = NULL;
    json_t *f = json_object_get(root, "reasoning_format");
    if (f && !json_is_null(f)) {
        const char *v = json_string_value(f);
        if (!v || (strcmp(v, "auto") != 0 && strcmp(v, "none") != 0))
            return srv_invalid(e, "reasoning_format", "'reasoning_format' must be \"auto\" or \"none\"");
        *none = strcmp(v, "none") == 0;
    }
    json_t *k = json_object_get(root, "chat_template_kwargs");
    if (!k || json_is_null(k)) return true;
    if (!json_is_object(k)) return srv_invalid(e, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
    if (json_object_size(k) > SRV_REASON_KWARGS_MAX_KEYS)
        return srv_invalid(e, "chat_template_kwargs", "'chat_template_kwargs' holds more than %d names",
                           SRV_REASON_KWARGS_MAX_KEYS);
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (json_object_get(k, reserved[i]))
            return srv_invalid(e, "chat_template_kwargs",
                               "'chat_template_kwargs' may not set '%s': the request's own fields set it", reserved[i]);
    size_t total = 0;
    if (json_dump_callback(k, count_bytes, &total, JSON_COMPACT) != 0)
        return srv_invalid(e, "chat_template_kwargs", "'chat_template_kwargs' is larger than %d bytes",
                           SRV_REASON_KWARGS_MAX_BYTES);
    *kwargs = k;
    return true;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool srv_reasoning_of_template(const char *src, size_t len) {
    return src && memmem(src, len, SRV_REASON_CLOSE, CLOSE_LEN) != NULL;
}

bool srv_reasoning_opened(const char *prompt, size_t len) {
    while (len > 0 && is_ws(prompt[len - 1])) len--;
    return len >= OPEN_LEN && memcmp(prompt + len - OPEN_LEN, SRV_REASON_OPEN, OPEN_LEN) == 0;
}

static size_t skip_ws(const char *s, size_t i, size_t n) {
    while (i < n && is_ws(s[i])) i++;
    return i;
}

void srv_reason_split(bool opened, const char *text, size_t len, size_t *r_off, size_t *r_len, size_t *c_off,
                      size_t *c_len) {
    size_t i = 0;
    if (!opened) {
        i = skip_ws(text, 0, len);
        if (len - i < OPEN_LEN || memcmp(text + i, SRV_REASON_OPEN, OPEN_LEN) != 0) {
            *r_off = *r_len = 0;
            *c_off = i;
            *c_len = len - i;
            return;
        }
        i += OPEN_LEN;
    }
    i = skip_ws(text, i, len);
    const char *end = memmem(text + i, len - i, SRV_REASON_CLOSE, CLOSE_LEN);
    *r_off = i;
    if (!end) {
        *r_len = len - i;
        *c_off = len;
        *c_len = 0;
        return;
    }
    *r_len = (size_t)(end - text) - i;
    *c_off = skip_ws(text, (size_t)(end - text) + CLOSE_LEN, len);
    *c_len = len - *c_off;
}

bool srv_reason_split_json(bool opened, json_t **text, json_t **reasoning) {
    const char *t = json_string_value(*text);
    size_t r_off, r_len, c_off, c_len;
    srv_reason_split(opened, t, json_string_length(*text), &r_off, &r_len, &c_off, &c_len);
    *reasoning = r_len ? srv_json_text(t + r_off, r_len) : NULL;
    json_t *answer = srv_json_text(t + c_off, c_len);
    json_decref(*text);
    *text = answer;
    if (answer && (!r_len || *reasoning)) return true;
    json_decref(*reasoning);
    json_decref(answer);
    *reasoning = *text = NULL;
    return false;
}

void srv_reason_stream_init(srv_reason_stream *rs, bool opened) {
    *rs = (srv_reason_stream){.state = opened ? ST_LEAD : ST_START};
}

bool srv_reason_feed(srv_reason_stream *rs, const char *text, size_t len, srv_buf *reasoning, srv_buf *content) {
    size_t i = 0;
    while (i < len) {
        char c = text[i];
        switch (rs->state) {
        case ST_START:
            if (rs->n_held == 0 && is_ws(c)) {
                i++;
            } else if (c == SRV_REASON_OPEN[rs->n_held]) {
                rs->held[rs->n_held++] = c;
                i++;
                if (rs->n_held == OPEN_LEN) {
                    rs->n_held = 0;
                    rs->state = ST_LEAD;
                }
            } else {
                if (!srv_buf_add(content, rs->held, rs->n_held)) return false;
                rs->n_held = 0;
                rs->state = ST_ANSWER;
            }
            break;
        case ST_LEAD:
        case ST_TRIM:
            if (is_ws(c))
                i++;
            else
                rs->state = rs->state == ST_LEAD ? ST_INSIDE : ST_ANSWER;
            break;
        case ST_INSIDE:
            if (c == SRV_REASON_CLOSE[rs->n_held]) {
                rs->held[rs->n_held++] = c;
                i++;
                if (rs->n_held == CLOSE_LEN) {
                    rs->n_held = 0;
                    rs->state = ST_TRIM;
                }
            } else if (rs->n_held > 0) {
                /* '<' opens the marker and appears nowhere else in it: c starts afresh */
                if (!srv_buf_add(reasoning, rs->held, rs->n_held)) return false;
                rs->n_held = 0;
            } else {
                const char *lt = memchr(text + i, '<', len - i);
                size_t run = lt ? (size_t)(lt - (text + i)) : len - i;
                if (!srv_buf_add(reasoning, text + i, run)) return false;
                i += run;
            }
            break;
        default:
            if (!srv_buf_add(content, text + i, len - i)) return false;
            i = len;
            break;
        }
    }
    return true;
}

bool srv_reason_finish(srv_reason_stream *rs, srv_buf *reasoning, srv_buf *content) {
    bool ok = srv_buf_add(rs->state == ST_INSIDE ? reasoning : content, rs->held, rs->n_held);
    rs->n_held = 0;
    return ok;
}
