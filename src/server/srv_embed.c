/* POST /v1/embeddings: parses and checks the request (input as a string, strings, token
 * ids or arrays of token ids; encoding_format float or base64; dimensions; user; the
 * truncate extension), checks that the caller's key may use the model, serves what it
 * can from the cache, tokenizes and checks the rest against the model's context (no
 * silent truncation), hands them to the model's batcher and waits (checking the client
 * and the deadline every 100 ms), then writes the reply in OpenAI's shape. Never runs a
 * forward pass itself. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "server/srv_auth.h"
#include "server/srv_embed.h"
#include "server/srv_gateway.h"
#include "server/srv_internal.h"
#include "server/srv_json.h"

#define POLL_MS 100

typedef struct emb_input {
    const char *text;     /* a text input (borrowed from the JSON), or NULL for token ids */
    size_t text_len;
    int32_t *ids;         /* owned: the tokens */
    size_t n;
    bool cached;
} emb_input;

typedef struct emb_req {
    emb_input *in;
    size_t n;
    bool base64, truncate;
    int64_t dimensions;   /* 0: the model's */
} emb_req;

typedef struct emb_settings {
    cfg_embeddings emb;
    int32_t pooling, threads;
} emb_settings;

static void req_free(emb_req *r) {
    for (size_t i = 0; r->in && i < r->n; i++) mem_free(r->in[i].ids);
    mem_free(r->in);
    r->in = NULL;
}

/* One array of token ids into in (ids range-checked later against the vocabulary). */
static bool parse_ids(const json_t *arr, emb_input *in, const char *param, srv_error *e) {
    size_t n = json_array_size(arr);
    if (n == 0) return srv_invalid(e, param, "'%s' is an empty array of tokens", param);
    if (!(in->ids = mem_alloc_array(n, sizeof *in->ids)))
        return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t k = 0; k < n; k++) {
        const json_t *t = json_array_get(arr, k);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
            return srv_invalid(e, param, "'%s' must hold token ids (non-negative integers); item %zu is not one", param, k);
        in->ids[k] = (int32_t)json_integer_value(t);
    }
    in->n = n;
    return true;
}

static bool parse_input(const json_t *v, int32_t max_inputs, emb_req *r, srv_error *e) {
    if (!v || json_is_null(v)) return srv_invalid(e, "input", "you must provide an 'input'");
    if (json_is_string(v)) {
        if (!(r->in = mem_calloc(1, sizeof *r->in))) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        r->n = 1;
        r->in[0] = (emb_input){.text = json_string_value(v), .text_len = json_string_length(v)};
        if (!r->in[0].text_len) return srv_invalid(e, "input", "'input' is an empty string");
        return true;
    }
    if (!json_is_array(v))
        return srv_invalid(e, "input", "'input' must be a string, an array of strings, or token ids");
    size_t n = json_array_size(v);
    if (n == 0) return srv_invalid(e, "input", "'input' is an empty array");
    const json_t *first = json_array_get(v, 0);
    bool one_token_list = json_is_integer(first);
    size_t count = one_token_list ? 1 : n;
    if (count > (size_t)max_inputs)
        return srv_invalid(e, "input", "'input' has %zu items; at most %d are allowed per request", count, max_inputs);
    if (!(r->in = mem_calloc(count, sizeof *r->in))) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    r->n = count;
    if (one_token_list) return parse_ids(v, &r->in[0], "input", e);
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(v, i);
        char param[48];
        snprintf(param, sizeof param, "input[%zu]", i);
        if (json_is_string(first) && json_is_string(it)) {
            r->in[i] = (emb_input){.text = json_string_value(it), .text_len = json_string_length(it)};
            if (!r->in[i].text_len) return srv_invalid(e, param, "'%s' is an empty string", param);
        } else if (json_is_array(first) && json_is_array(it)) {
            if (!parse_ids(it, &r->in[i], param, e)) return false;
        } else {
            return srv_invalid(e, param,
                               "'input' must be all strings or all arrays of token ids; '%s' differs from 'input[0]'",
                               param);
        }
    }
    return true;
}

static bool parse(const json_t *root, int32_t max_inputs, emb_req *r, srv_error *e) {
    const json_t *v = json_object_get(root, "encoding_format");
    if (v && !json_is_null(v)) {
        const char *f = json_is_string(v) ? json_string_value(v) : "";
        if (!strcmp(f, "base64")) r->base64 = true;
        else if (strcmp(f, "float") != 0)
            return srv_invalid(e, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
    }
    v = json_object_get(root, "dimensions");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return srv_invalid(e, "dimensions", "'dimensions' must be a positive integer");
        r->dimensions = json_integer_value(v);
    }
    v = json_object_get(root, "user");
    if (v && !json_is_null(v) && !json_is_string(v)) return srv_invalid(e, "user", "'user' must be a string");
    v = json_object_get(root, "truncate");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) return srv_invalid(e, "truncate", "'truncate' must be true or false");
        r->truncate = json_is_true(v);
    }
    return parse_input(json_object_get(root, "input"), max_inputs, r, e);
}

static void settings_of(srv *s, const char *model_name, emb_settings *out) {
    pthread_mutex_lock(&s->reload_mu);
    const cfg_model *mc = cfg_find_model(s->config, model_name);
    out->emb = s->config->embeddings;
    out->pooling = mc ? mc->pooling : -1;
    out->threads = mc ? mc->threads : 0;
    pthread_mutex_unlock(&s->reload_mu);
}

static embed_cache_key key_of(const emb_input *in, uint64_t instance, embed_pooling p, bool truncate) {
    embed_cache_key k = {.model = instance, .pooling = (int32_t)p, .flags = EMBED_CACHE_NORMALIZE};
    if (truncate) k.flags |= EMBED_CACHE_TRUNCATE;
    if (in->text) {
        k.data = in->text;
        k.len = in->text_len;
    } else {
        k.flags |= EMBED_CACHE_TOKENS;
        k.data = in->ids;
        k.len = in->n * sizeof(int32_t);
    }
    return k;
}

/* Tokenizes a text input and checks its tokens against the vocabulary and the context. */
static bool prepare(emb_input *in, size_t i, const tok_vocab *v, int64_t n_ctx, bool truncate, srv_error *e) {
    char param[48];
    snprintf(param, sizeof param, "input[%zu]", i);
    if (in->text) {
        hearth_err err = {0};
        if (tok_encode(v, in->text, in->text_len, true, false, &in->ids, &in->n, &err))
            return srv_fail(e, 500, "server_error", NULL, NULL, "tokenizing %s: %s", param, err.msg);
        if (in->n == 0) return srv_invalid(e, param, "'%s' has no tokens", param);
    }
    int32_t n_vocab = tok_n_vocab(v);
    for (size_t k = 0; k < in->n; k++)
        if (in->ids[k] >= n_vocab)
            return srv_invalid(e, param, "'%s' token %zu (id %d) is outside the vocabulary (%d tokens)", param, k,
                               in->ids[k], n_vocab);
    if (in->n > (size_t)n_ctx) {
        if (!truncate)
            return srv_invalid(e, param,
                               "'%s' has %zu tokens, more than the model's context of %lld tokens (send "
                               "\"truncate\": true to embed its first %lld)",
                               param, in->n, (long long)n_ctx, (long long)n_ctx);
        in->n = (size_t)n_ctx;
    }
    return true;
}

/* Runs the inputs the cache did not have through the batcher; their rows go to vecs. */
static bool run_misses(const srv_client *c, embed_batcher *b, emb_req *r, const embed_opts *o, float *vecs,
                       size_t dim, uint64_t deadline, srv_error *e) {
    size_t n_miss = 0;
    for (size_t i = 0; i < r->n; i++) n_miss += !r->in[i].cached;
    if (!n_miss) return true;
    embed_input *ins = mem_alloc_array(n_miss, sizeof *ins);
    float *rows = mem_alloc_array(n_miss, dim * sizeof(float));
    bool ok = ins && rows;
    if (!ok) srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0, k = 0; ok && i < r->n; i++)
        if (!r->in[i].cached) ins[k++] = (embed_input){r->in[i].ids, r->in[i].n};
    embed_ticket *t = NULL;
    hearth_err err = {0};
    hearth_status st = ok ? embed_batcher_submit(b, ins, n_miss, o, rows, &t, &err) : HEARTH_OK;
    if (ok && st) {
        srv_fail_status(e, st, err.msg);
        if (st == HEARTH_ERR_BUSY) {
            e->code = "queue_full";
            e->retry_after_s = 1;
        }
        ok = false;
    }
    while (ok && !embed_ticket_wait(t, POLL_MS)) {
        if (srv_client_gone(c)) ok = srv_fail(e, 499, "server_error", "cancelled", NULL, "the client went away");
        else if (clock_mono_ns() > deadline)
            ok = srv_fail(e, 504, "timeout_error", "timeout", NULL, "the request did not finish before its deadline");
    }
    if (ok && (st = embed_ticket_status(t, &err))) ok = (srv_fail_status(e, st, err.msg), false);
    embed_ticket_free(t);
    for (size_t i = 0, k = 0; ok && i < r->n; i++)
        if (!r->in[i].cached) memcpy(vecs + i * dim, rows + k++ * dim, dim * sizeof(float));
    mem_free(rows);
    mem_free(ins);
    return ok;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool add_base64(srv_buf *b, const unsigned char *p, size_t n) {
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        q[0] = B64[v >> 18 & 63];
        q[1] = B64[v >> 12 & 63];
        q[2] = i + 1 < n ? B64[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? B64[v & 63] : '=';
        if (!srv_buf_add(b, q, 4)) return false;
    }
    return true;
}

/* The first d values of row, renormalised when d cuts it. */
static void cut_row(float *row, size_t dim, size_t d) {
    if (d >= dim) return;
    double ss = 0;
    for (size_t k = 0; k < d; k++) ss += (double)row[k] * row[k];
    if (ss > 0)
        for (size_t k = 0; k < d; k++) row[k] = (float)(row[k] / sqrt(ss));
}

static bool write_reply(srv_reply *out, const emb_req *r, float *vecs, size_t dim, size_t d, const char *model_name,
                        int64_t tokens) {
    srv_buf b = {.max = (size_t)1 << 40};
    bool ok = srv_buf_addf(&b, "{\"object\":\"list\",\"data\":[");
    char num[32];
    for (size_t i = 0; ok && i < r->n; i++) {
        float *row = vecs + i * dim;
        cut_row(row, dim, d);
        ok = srv_buf_addf(&b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        if (r->base64) {
            ok = ok && srv_buf_add(&b, "\"", 1) && add_base64(&b, (const unsigned char *)row, d * sizeof(float)) &&
                 srv_buf_add(&b, "\"", 1);
        } else {
            ok = ok && srv_buf_add(&b, "[", 1);
            for (size_t k = 0; ok && k < d; k++) {
                if (!isfinite(row[k])) ok = false;
                int len = snprintf(num, sizeof num, k ? ",%.9g" : "%.9g", (double)row[k]);
                ok = ok && srv_buf_add(&b, num, (size_t)len);
            }
            ok = ok && srv_buf_add(&b, "]", 1);
        }
        ok = ok && srv_buf_add(&b, "}", 1);
    }
    json_t *name = json_string(model_name);
    ok = ok && name && srv_buf_addf(&b, "],\"model\":") && srv_buf_add_json(&b, name) &&
         srv_buf_addf(&b, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)tokens,
                      (long long)tokens);
    json_decref(name);
    if (!ok) {
        srv_buf_free(&b);
        return false;
    }
    out->status = 200;
    out->raw = b.data;
    out->raw_len = b.len;
    out->content_type = "application/json";
    return true;
}

/* Everything after the model is leased; releases nothing. */
static bool embed_with(srv *s, srv_model *m, const emb_settings *cf, emb_req *r, const srv_client *c,
                       uint64_t deadline, srv_reply *out, srv_error *e) {
    embed_batcher *b = NULL;
    uint64_t instance = 0;
    hearth_err err = {0};
    hearth_status st = srv_embed_batcher(s->embed, m, cf->threads, cf->emb.batch_tokens, cf->emb.max_queue, &b,
                                         &instance, &err);
    if (st) return srv_fail(e, 500, "server_error", NULL, NULL, "the model '%s' cannot embed: %s", srv_model_id(m), err.msg);
    const model *md = fleet_lease_model(m)->model;
    embed_opts o;
    embed_opts_default(&o);
    o.pooling = cf->pooling >= 0 ? (embed_pooling)cf->pooling : embed_model_pooling(md);
    if (o.pooling == EMBED_POOL_NONE)
        return srv_fail(e, 400, "invalid_request_error", "model_not_supported", "model",
                        "the model '%s' pools 'none' (a vector per token); /v1/embeddings needs one per input",
                        srv_model_id(m));
    size_t dim = (size_t)embed_batcher_n_embd(b), d = dim;
    if (r->dimensions > (int64_t)dim)
        return srv_invalid(e, "dimensions", "'dimensions' is %lld but the model '%s' gives %zu", (long long)r->dimensions,
                           srv_model_id(m), dim);
    if (r->dimensions) d = (size_t)r->dimensions;
    float *vecs = mem_alloc_array(r->n, dim * sizeof(float));
    if (!vecs) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    embed_cache *cache = srv_embed_cache(s->embed);
    int64_t tokens = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < r->n; i++) {
        embed_cache_key k = key_of(&r->in[i], instance, o.pooling, r->truncate);
        int64_t nt = 0;
        if (cache && embed_cache_get(cache, &k, vecs + i * dim, dim, &nt)) {
            r->in[i].cached = true;
            tokens += nt;
        } else {
            ok = prepare(&r->in[i], i, srv_model_vocab(m), embed_batcher_n_ctx(b), r->truncate, e);
            tokens += (int64_t)r->in[i].n;
        }
        if (ok && tokens > cf->emb.max_request_tokens)   /* cached inputs count: the cap is the request's size */
            ok = srv_invalid(e, "input",
                             "the inputs reach %lld tokens by input[%zu]; at most %d are allowed per request "
                             "(embeddings.max_request_tokens): split the request",
                             (long long)tokens, i, cf->emb.max_request_tokens);
    }
    ok = ok && run_misses(c, b, r, &o, vecs, dim, deadline, e);
    for (size_t i = 0; ok && cache && i < r->n; i++) {
        if (r->in[i].cached) continue;
        embed_cache_key k = key_of(&r->in[i], instance, o.pooling, r->truncate);
        embed_cache_put(cache, &k, vecs + i * dim, dim, (int64_t)r->in[i].n);
    }
    if (ok && !write_reply(out, r, vecs, dim, d, srv_model_id(m), tokens))
        ok = srv_fail(e, 500, "server_error", NULL, NULL, "the embedding is not finite, or out of memory");
    out->prompt_tokens = tokens;
    mem_free(vecs);
    return ok;
}

static bool is_route(srv *s, const char *name) {
    srv_gw_ref *ref = srv_gw_acquire(s);
    bool yes = ref && gw_has_route(srv_gw_of(ref), name);
    srv_gw_release(ref);
    return yes;
}

void srv_handle_embeddings(srv *s, const char *body, size_t len, const srv_client *c, srv_reply *out) {
    srv_error e;
    emb_req r = {0};
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *mv = root ? json_object_get(root, "model") : NULL;
    const char *name = json_is_string(mv) ? json_string_value(mv) : NULL;
    double keep_alive = -2;
    emb_settings cf;
    bool ok = true;
    if (!root || !json_is_object(root)) ok = srv_invalid(&e, NULL, "the body must be a JSON object");
    else if (!name) ok = srv_invalid(&e, "model", "you must provide a model parameter");
    else if (!srv_key_permits_model(s, c->key, name, &e))
        ok = false;
    else if (!fleet_has(s->fleet, name) && is_route(s, name))
        ok = srv_fail(&e, 400, "invalid_request_error", "route_not_supported", "model",
                      "'%.200s' is a route: routes serve chat completions and completions, not embeddings; name a model",
                      name);
    else if (!fleet_has(s->fleet, name))
        ok = srv_fail(&e, 404, "invalid_request_error", "model_not_found", "model", "The model '%.200s' does not exist",
                      name);
    if (ok) settings_of(s, name, &cf);
    ok = ok && srv_model_keep_alive(root, &keep_alive, &e) && parse(root, cf.emb.max_inputs, &r, &e);
    uint64_t deadline = srv_deadline(s, 0);
    srv_model *m = NULL;
    ok = ok && srv_model_acquire(s->fleet, name, keep_alive, deadline, false, &m, &e);
    if (ok && fleet_lease_lora(m).adapter) /* the batcher runs the base weights only */
        ok = srv_fail(&e, 400, "invalid_request_error", "model_not_supported", "model",
                      "'%.200s' names a LoRA adapter; embeddings run without adapters", name);
    if (ok) {
        snprintf(out->model, sizeof out->model, "%s", srv_model_id(m));
        ok = embed_with(s, m, &cf, &r, c, deadline, out, &e);
    }
    srv_model_release(m);
    req_free(&r);
    json_decref(root);
    if (!ok) srv_reply_error(out, &e);
}
