/* Request parsing and validation (see srv_request.h). Reads JSON only through checked
 * accessors; every failure names the field. Never trusts a count: arrays and strings
 * have caps, numbers must be finite and in range. */
#include "server/srv_request.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "server/srv_reasoning.h"
#include "server/srv_tools.h"

/* The member key of obj, treating JSON null as absent. */
static json_t *field(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static bool get_bool(const json_t *obj, const char *key, bool *out, srv_error *e) {
    json_t *v = field(obj, key);
    if (!v) return true;
    if (!json_is_boolean(v)) return srv_invalid(e, key, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return true;
}

/* A finite number in [lo, hi]; *given tells whether it was present. */
static bool get_number(const json_t *obj, const char *key, double lo, double hi, double *out, bool *given,
                       srv_error *e) {
    json_t *v = field(obj, key);
    if (given) *given = v != NULL;
    if (!v) return true;
    if (!json_is_number(v)) return srv_invalid(e, key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return srv_invalid(e, key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
    *out = d;
    return true;
}

static bool get_int(const json_t *obj, const char *key, json_int_t lo, json_int_t hi, json_int_t *out, bool *given,
                    srv_error *e) {
    json_t *v = field(obj, key);
    if (given) *given = v != NULL;
    if (!v) return true;
    if (!json_is_integer(v)) return srv_invalid(e, key, "'%s' must be an integer", key);
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return srv_invalid(e, key, "'%s' must be between %lld and %lld, got %lld", key, (long long)lo, (long long)hi,
                           (long long)i);
    *out = i;
    return true;
}

static bool parse_model(const json_t *root, srv_req *r, srv_error *e) {
    json_t *v = field(root, "model");
    if (!v) return srv_invalid(e, "model", "you must provide a model parameter");
    if (!json_is_string(v)) return srv_invalid(e, "model", "'model' must be a string");
    r->model = json_string_value(v);
    return true;
}

static bool parse_sampling(const json_t *root, srv_req *r, srv_error *e) {
    sampler_params *sp = &r->sampling;
    double d = 0;
    bool given = false, ok = true;
    ok = ok && get_number(root, "temperature", 0, 2, &d, &given, e);
    if (ok && given) sp->temperature = (float)d;
    ok = ok && get_number(root, "top_p", 0, 1, &d, &given, e);
    if (ok && given) sp->top_p = (float)d;
    ok = ok && get_number(root, "min_p", 0, 1, &d, &given, e);
    if (ok && given) sp->min_p = (float)d;
    ok = ok && get_number(root, "presence_penalty", -2, 2, &d, &given, e);
    if (ok && given) sp->presence_penalty = (float)d;
    ok = ok && get_number(root, "frequency_penalty", -2, 2, &d, &given, e);
    if (ok && given) sp->frequency_penalty = (float)d;
    const char *rp = field(root, "repetition_penalty") ? "repetition_penalty" : "repeat_penalty";
    ok = ok && get_number(root, rp, 0, 100, &d, &given, e);
    if (ok && given) {
        if (d <= 0) return srv_invalid(e, rp, "'%s' must be greater than 0", rp);
        sp->repeat_penalty = (float)d;
    }
    json_int_t i = 0;
    ok = ok && get_int(root, "top_k", 0, INT32_MAX, &i, &given, e);
    if (ok && given) sp->top_k = (int32_t)i;
    ok = ok && get_int(root, "seed", INT64_MIN, INT64_MAX, &i, &r->seed_given, e);
    if (ok && r->seed_given) sp->seed = (uint64_t)i;
    return ok;
}

static bool parse_logit_bias(const json_t *root, int32_t n_vocab, srv_req *r, srv_error *e) {
    json_t *v = field(root, "logit_bias");
    if (!v) return true;
    if (!json_is_object(v)) return srv_invalid(e, "logit_bias", "'logit_bias' must be an object of token ids to numbers");
    size_t n = json_object_size(v);
    if (n == 0) return true;
    if (n > (size_t)n_vocab) return srv_invalid(e, "logit_bias", "'logit_bias' has more entries than the vocabulary");
    r->bias = mem_alloc_array(n, sizeof *r->bias);
    if (!r->bias) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        char *end = NULL;
        errno = 0;
        long long id = strtoll(key, &end, 10);
        if (!key[0] || *end || errno || key[0] == ' ' || key[0] == '+' || id < 0 || id >= n_vocab) {
            if (n_vocab == INT32_MAX) /* the first pass, before the model's vocabulary is known */
                return srv_invalid(e, "logit_bias", "logit_bias key '%.40s' is not a token id", key);
            return srv_invalid(e, "logit_bias", "logit_bias key '%.40s' is not a token id in [0, %d)", key, n_vocab);
        }
        if (!json_is_number(val)) return srv_invalid(e, "logit_bias", "logit_bias value for token %lld must be a number", id);
        double b = json_number_value(val);
        if (!isfinite(b) || b < -100 || b > 100)
            return srv_invalid(e, "logit_bias", "logit_bias value for token %lld must be between -100 and 100", id);
        /* -100 is OpenAI's "ban": make it exact whatever the logits' scale */
        r->bias[r->n_bias++] = (sampler_bias){(int32_t)id, b <= -100 ? -INFINITY : (float)b};
    }
    r->sampling.bias = r->bias;
    r->sampling.n_bias = r->n_bias;
    return true;
}

static bool parse_stop(const json_t *root, srv_req *r, srv_error *e) {
    json_t *v = field(root, "stop");
    if (!v) return true;
    const json_t *one[1] = {v};
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > STOP_MAX_STRINGS) return srv_invalid(e, "stop", "'stop' may hold at most %d strings", STOP_MAX_STRINGS);
    } else if (!json_is_string(v)) {
        return srv_invalid(e, "stop", "'stop' must be a string or an array of strings");
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_array(v) ? json_array_get(v, i) : one[0];
        if (!json_is_string(s)) return srv_invalid(e, "stop", "'stop' must be a string or an array of strings");
        size_t len = json_string_length(s);
        if (len == 0 || len > STOP_MAX_LEN)
            return srv_invalid(e, "stop", "each stop string must be 1 to %d bytes long", STOP_MAX_LEN);
        if (memchr(json_string_value(s), '\0', len)) return srv_invalid(e, "stop", "stop strings may not contain NUL");
        r->stop[r->n_stop++] = json_string_value(s);
    }
    return true;
}

static bool parse_common(const json_t *root, int32_t n_vocab, srv_req *r, srv_error *e) {
    if (!parse_model(root, r, e) || !parse_sampling(root, r, e) || !parse_logit_bias(root, n_vocab, r, e) ||
        !parse_stop(root, r, e) || !get_bool(root, "stream", &r->stream, e) ||
        !get_bool(root, "ignore_eos", &r->ignore_eos, e))
        return false;
    json_t *so = field(root, "stream_options");
    if (so) {
        if (!json_is_object(so)) return srv_invalid(e, "stream_options", "'stream_options' must be an object");
        if (!r->stream)
            return srv_invalid(e, "stream_options", "'stream_options' is only allowed when 'stream' is true");
        json_t *iu = field(so, "include_usage");
        if (iu && !json_is_boolean(iu))
            return srv_invalid(e, "stream_options.include_usage", "'include_usage' must be a boolean");
        r->include_usage = json_is_true(iu);
    }
    json_int_t i = 0;
    bool given = false;
    if (!get_int(root, "n", 1, SRV_MAX_CHOICES, &i, &given, e)) return false;
    r->n = given ? (int)i : 1;
    json_t *bo = field(root, "best_of");
    if (bo && !(json_is_integer(bo) && json_integer_value(bo) == r->n))
        return srv_invalid(e, "best_of", "'best_of' other than n is not supported");
    const char *mt = field(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (!get_int(root, mt, 1, INT32_MAX, &i, &given, e)) return false;
    if (given) r->max_tokens = (int32_t)i;
    double t = 0;
    if (!get_number(root, "timeout", 0, SRV_MAX_TIMEOUT_S, &t, &given, e)) return false;
    if (given && t <= 0) return srv_invalid(e, "timeout", "'timeout' must be a positive number of seconds");
    r->timeout_s = given ? t : 0;
    json_t *user = field(root, "user");
    if (user && !json_is_string(user)) return srv_invalid(e, "user", "'user' must be a string");
    json_t *rf = field(root, "response_format");
    if (rf) {
        json_t *type = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        if (!json_is_string(type))
            return srv_invalid(e, "response_format", "'response_format' must be an object with a 'type'");
        if (strcmp(json_string_value(type), "text") != 0)
            return srv_invalid(e, "response_format.type", "response_format type '%.40s' is not supported",
                               json_string_value(type));
    }
    return true;
}

/* ---- chat -------------------------------------------------------------------------- */

static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", "function"};

/* Joins the text parts of an array content into one string. */
static bool content_parts(const json_t *parts, size_t mi, json_t **out, srv_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", mi);
    size_t n = json_array_size(parts), total = 0;
    for (size_t k = 0; k < n; k++) {
        const json_t *p = json_array_get(parts, k);
        json_t *type = json_is_object(p) ? json_object_get(p, "type") : NULL;
        if (!json_is_string(type)) return srv_invalid(e, param, "each content part must be an object with a 'type'");
        if (strcmp(json_string_value(type), "text") != 0)
            return srv_invalid(e, param, "content part type '%.40s' is not supported (only 'text')",
                               json_string_value(type));
        json_t *text = json_object_get(p, "text");
        if (!json_is_string(text)) return srv_invalid(e, param, "a text content part needs a string 'text'");
        total += json_string_length(text) + 1;
    }
    char *buf = mem_alloc(total + 1);
    if (!buf) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t len = 0;
    for (size_t k = 0; k < n; k++) {
        const json_t *text = json_object_get(json_array_get(parts, k), "text");
        if (k) buf[len++] = '\n';
        memcpy(buf + len, json_string_value(text), json_string_length(text));
        len += json_string_length(text);
    }
    *out = json_stringn(buf, len);
    mem_free(buf);
    return *out ? true : srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
}

static bool parse_message(const json_t *m, size_t mi, json_t *out_list, srv_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu]", mi);
    if (!json_is_object(m)) return srv_invalid(e, param, "each message must be an object");
    snprintf(param, sizeof param, "messages[%zu].role", mi);
    json_t *role = json_object_get(m, "role");
    if (!json_is_string(role)) return srv_invalid(e, param, "each message needs a string 'role'");
    const char *rs = json_string_value(role);
    size_t ri = 0;
    while (ri < sizeof roles / sizeof roles[0] && strcmp(roles[ri], rs) != 0) ri++;
    if (ri == sizeof roles / sizeof roles[0])
        return srv_invalid(e, param, "unknown role '%.40s' (expected system, developer, user, assistant or tool)", rs);
    bool assistant = !strcmp(rs, "assistant");
    json_t *tool_calls = field(m, "tool_calls");
    snprintf(param, sizeof param, "messages[%zu].tool_calls", mi);
    if (tool_calls && (!assistant || !json_is_array(tool_calls)))
        return srv_invalid(e, param, "'tool_calls' must be an array on an assistant message");
    snprintf(param, sizeof param, "messages[%zu].name", mi);
    json_t *name = field(m, "name");
    if (name && !json_is_string(name)) return srv_invalid(e, param, "'name' must be a string");

    snprintf(param, sizeof param, "messages[%zu].content", mi);
    json_t *content = field(m, "content"), *norm = NULL;
    if (!content) {
        if (!(assistant && tool_calls)) return srv_invalid(e, param, "message %zu has no 'content'", mi);
        norm = json_null();
    } else if (json_is_string(content)) {
        norm = json_incref(content);
    } else if (json_is_array(content)) {
        if (!content_parts(content, mi, &norm, e)) return false;
    } else {
        return srv_invalid(e, param, "'content' must be a string or an array of content parts");
    }
    json_t *copy = json_copy((json_t *)m);
    if (!copy || json_object_set_new(copy, "content", norm) != 0 ||
        (!strcmp(rs, "developer") && json_object_set_new(copy, "role", json_string("system")) != 0) ||
        json_array_append_new(out_list, copy) != 0) {
        if (!copy) json_decref(norm);
        return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return true;
}

static bool parse_chat(const json_t *root, srv_req *r, srv_error *e) {
    json_t *msgs = json_object_get(root, "messages");
    if (!msgs) return srv_invalid(e, "messages", "you must provide 'messages'");
    if (!json_is_array(msgs)) return srv_invalid(e, "messages", "'messages' must be an array");
    size_t n = json_array_size(msgs);
    if (n == 0) return srv_invalid(e, "messages", "'messages' must not be empty");
    if (n > SRV_MAX_MESSAGES) return srv_invalid(e, "messages", "'messages' holds more than %d messages", SRV_MAX_MESSAGES);
    r->messages = json_array();
    if (!r->messages) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (!parse_message(json_array_get(msgs, i), i, r->messages, e)) return false;
    const json_t *tools = NULL;
    if (!srv_tools_parse_request(root, &tools, &r->forced_tool, e)) return false;
    r->one_tool_call = json_is_false(json_object_get(root, "parallel_tool_calls"));
    r->tools = (json_t *)tools;
    if (!srv_reasoning_parse_request(root, &r->reasoning_none, &r->template_kwargs, e)) return false;
    json_t *mod = field(root, "modalities");
    if (mod && !json_is_array(mod)) return srv_invalid(e, "modalities", "'modalities' must be an array of strings");
    for (size_t i = 0; mod && i < json_array_size(mod); i++) {
        json_t *m = json_array_get(mod, i);
        if (!json_is_string(m) || strcmp(json_string_value(m), "text") != 0)
            return srv_invalid(e, "modalities", "only the 'text' modality is supported");
    }
    if (field(root, "audio")) return srv_invalid(e, "audio", "audio output is not supported");
    if (field(root, "web_search_options")) return srv_invalid(e, "web_search_options", "web search is not supported");
    bool lp = false;
    if (!get_bool(root, "logprobs", &lp, e)) return false;
    json_int_t top = 0;
    bool given = false;
    if (!get_int(root, "top_logprobs", 0, SAMPLER_MAX_TOP_LOGPROBS, &top, &given, e)) return false;
    if (given && !lp) return srv_invalid(e, "top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
    r->n_logprobs = lp ? (int)top : -1;
    return true;
}

/* ---- completions ------------------------------------------------------------------- */

static bool token_ids(const json_t *arr, int32_t n_vocab, srv_prompt_in *p, srv_error *e) {
    size_t n = json_array_size(arr);
    if (n == 0) return srv_invalid(e, "prompt", "a token prompt must not be empty");
    if (n > SRV_MAX_PROMPT_TOKENS_IN) return srv_invalid(e, "prompt", "a token prompt holds too many tokens");
    p->ids = mem_alloc_array(n, sizeof *p->ids);
    if (!p->ids) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(arr, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= n_vocab)
            return srv_invalid(e, "prompt", "prompt token %zu is not a token id in [0, %d)", i, n_vocab);
        p->ids[i] = (int32_t)json_integer_value(t);
    }
    p->n_ids = n;
    return true;
}

static bool parse_completion(const json_t *root, int32_t n_vocab, srv_req *r, srv_error *e) {
    json_t *p = json_object_get(root, "prompt");
    if (!p) return srv_invalid(e, "prompt", "you must provide 'prompt'");
    if (json_is_string(p)) {
        r->prompts[0] = (srv_prompt_in){.text = json_string_value(p), .len = json_string_length(p)};
        r->n_prompts = 1;
    } else if (json_is_array(p) && json_array_size(p) > 0) {
        json_t *first = json_array_get(p, 0);
        size_t n = json_array_size(p);
        if (json_is_integer(first)) {
            r->n_prompts = 1;
            if (!token_ids(p, n_vocab, &r->prompts[0], e)) return false;
        } else {
            if (n > SRV_MAX_CHOICES) return srv_invalid(e, "prompt", "at most %d prompts per request", SRV_MAX_CHOICES);
            for (size_t i = 0; i < n; i++) {
                json_t *x = json_array_get(p, i);
                r->n_prompts = i + 1;
                if (json_is_string(x) && json_is_string(first)) {
                    r->prompts[i] = (srv_prompt_in){.text = json_string_value(x), .len = json_string_length(x)};
                } else if (json_is_array(x) && json_is_array(first)) {
                    if (!token_ids(x, n_vocab, &r->prompts[i], e)) return false;
                } else {
                    return srv_invalid(e, "prompt",
                                       "'prompt' must be a string, an array of strings, an array of token ids "
                                       "or an array of token id arrays");
                }
            }
        }
    } else {
        return srv_invalid(e, "prompt",
                           "'prompt' must be a string, an array of strings, an array of token ids or an array of "
                           "token id arrays");
    }
    if (r->n_prompts * (size_t)r->n > SRV_MAX_CHOICES)
        return srv_invalid(e, "n", "prompts x n must be at most %d", SRV_MAX_CHOICES);
    json_t *suffix = field(root, "suffix");
    if (suffix && !(json_is_string(suffix) && json_string_length(suffix) == 0))
        return srv_invalid(e, "suffix", "'suffix' is not supported");
    json_int_t lp = 0;
    bool given = false;
    if (!get_int(root, "logprobs", 0, SAMPLER_MAX_TOP_LOGPROBS, &lp, &given, e)) return false;
    r->n_logprobs = given ? (int)lp : -1;
    if (!get_bool(root, "echo", &r->echo, e)) return false;
    if (r->echo && given)
        return srv_invalid(e, "echo", "'echo' with 'logprobs' is not supported (it needs the prompt's log probabilities)");
    return true;
}

bool srv_req_parse(const char *body, size_t len, srv_api api, int32_t n_vocab, srv_req *r, srv_error *e) {
    *r = (srv_req){.api = api, .n = 1, .n_logprobs = -1};
    sampler_params_default(&r->sampling);
    json_error_t je;
    r->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!r->root)
        return srv_invalid(e, NULL, "the request body is not valid JSON: %s at line %d column %d", je.text, je.line,
                           je.column);
    bool ok = json_is_object(r->root) ? true : srv_invalid(e, NULL, "the request body must be a JSON object");
    ok = ok && parse_common(r->root, n_vocab, r, e);
    ok = ok && (api == SRV_API_CHAT ? parse_chat(r->root, r, e) : parse_completion(r->root, n_vocab, r, e));
    if (!ok) srv_req_free(r);
    return ok;
}

void srv_req_free(srv_req *r) {
    json_decref(r->messages);
    json_decref(r->root);
    mem_free(r->bias);
    for (size_t i = 0; i < r->n_prompts; i++) mem_free(r->prompts[i].ids);
    *r = (srv_req){0};
}
