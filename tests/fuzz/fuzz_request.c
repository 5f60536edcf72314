/* libFuzzer target: request bodies through srv_req_parse, the validation of
 * /v1/chat/completions and /v1/completions. Byte 0 picks the API and the vocabulary size;
 * the rest is the body. A refusal must be a 400 with a message and leave the request
 * empty; an accepted request must hold only values in their documented ranges, and the
 * sampler must accept its sampling parameters (a request the parser lets through must
 * not fail later as a server error). */
#include <math.h>
#include <string.h>

#include "engine/sampler.h"
#include "fz_util.h"
#include "server/srv_request.h"

static volatile size_t sink;

static void touch(const char *s, size_t n) {
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += (unsigned char)s[i];
    sink += sum;
}

static void check_range(const char *what, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi)) fz_fail("%s = %g accepted, outside [%g, %g]", what, v, lo, hi);
}

static void check_chat(const srv_req *r) {
    size_t n = json_array_size(r->messages);
    if (!json_is_array(r->messages) || n == 0 || n > SRV_MAX_MESSAGES) fz_fail("chat accepted with %zu messages", n);
    static const char *const roles[] = {"system", "user", "assistant", "tool", "function"};
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(r->messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        size_t k = 0;
        while (role && k < sizeof roles / sizeof *roles && strcmp(roles[k], role) != 0) k++;
        if (!role || k == sizeof roles / sizeof *roles) fz_fail("message %zu has role '%s' after normalising", i, role);
        json_t *content = json_object_get(m, "content");
        if (json_is_string(content)) touch(json_string_value(content), json_string_length(content));
        else if (!json_is_null(content) || !json_is_array(json_object_get(m, "tool_calls")))
            fz_fail("message %zu: content neither a string nor null beside tool_calls", i);
    }
    if (r->tools && (!json_is_array(r->tools) || json_array_size(r->tools) == 0)) fz_fail("tools kept but empty");
}

static void check_completion(const srv_req *r, int32_t n_vocab) {
    if (r->n_prompts < 1 || r->n_prompts > SRV_MAX_CHOICES || r->n_prompts * (size_t)r->n > SRV_MAX_CHOICES)
        fz_fail("%zu prompts x n %d accepted", r->n_prompts, r->n);
    for (size_t i = 0; i < r->n_prompts; i++) {
        const srv_prompt_in *p = &r->prompts[i];
        if (p->text) {
            if (p->ids) fz_fail("prompt %zu has both text and ids", i);
            if (strlen(p->text) != p->len) fz_fail("prompt %zu text holds a NUL", i);
            touch(p->text, p->len);
            continue;
        }
        if (!p->ids || p->n_ids == 0 || p->n_ids > SRV_MAX_PROMPT_TOKENS_IN) fz_fail("prompt %zu: %zu ids", i, p->n_ids);
        for (size_t k = 0; k < p->n_ids; k++)
            if (p->ids[k] < 0 || p->ids[k] >= n_vocab) fz_fail("prompt %zu id %d outside [0, %d)", i, p->ids[k], n_vocab);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const int32_t vocabs[] = {1, 32, 32000, 152064};
    srv_api api = data[0] & 1 ? SRV_API_CHAT : SRV_API_COMPLETION;
    int32_t n_vocab = vocabs[(data[0] >> 1) & 3];
    srv_req r;
    srv_error e;
    memset(&e, 0, sizeof e);
    if (!srv_req_parse((const char *)data + 1, size - 1, api, n_vocab, &r, &e)) {
        if (e.status != 400) fz_fail("refusal with status %d: %s", e.status, e.message);
        if (!e.message[0] || strnlen(e.message, sizeof e.message) == sizeof e.message) fz_fail("refusal without a message");
        if (r.root || r.messages || r.bias || r.n_prompts) fz_fail("refusal left parts of the request behind");
        return 0;
    }
    if (!json_is_object(r.root) || !r.model) fz_fail("accepted without a root object or a model");
    touch(r.model, strlen(r.model));
    if (r.n < 1 || r.n > SRV_MAX_CHOICES) fz_fail("n = %d accepted", r.n);
    if (r.max_tokens < 0) fz_fail("max_tokens = %d accepted", r.max_tokens);
    if (r.n_stop > STOP_MAX_STRINGS) fz_fail("%zu stop strings accepted", r.n_stop);
    for (size_t i = 0; i < r.n_stop; i++) {
        size_t len = strlen(r.stop[i]);
        if (len < 1 || len > STOP_MAX_LEN) fz_fail("stop string %zu of %zu bytes accepted", i, len);
    }
    if (r.n_logprobs < -1 || r.n_logprobs > SAMPLER_MAX_TOP_LOGPROBS) fz_fail("logprobs %d accepted", r.n_logprobs);
    check_range("timeout", r.timeout_s, 0, SRV_MAX_TIMEOUT_S);
    const sampler_params *sp = &r.sampling;
    check_range("temperature", sp->temperature, 0, 2);
    check_range("top_p", sp->top_p, 0, 1);
    check_range("min_p", sp->min_p, 0, 1);
    check_range("presence_penalty", sp->presence_penalty, -2, 2);
    check_range("frequency_penalty", sp->frequency_penalty, -2, 2);
    if (!(sp->repeat_penalty > 0) || !isfinite(sp->repeat_penalty)) fz_fail("repeat_penalty %g accepted", sp->repeat_penalty);
    if (sp->n_bias != r.n_bias || (size_t)n_vocab < r.n_bias) fz_fail("%zu bias entries for %d tokens", r.n_bias, n_vocab);
    for (size_t i = 0; i < r.n_bias; i++) {
        if (r.bias[i].token < 0 || r.bias[i].token >= n_vocab) fz_fail("bias token %d accepted", r.bias[i].token);
        if (!(r.bias[i].bias == -INFINITY || (r.bias[i].bias >= -100 && r.bias[i].bias <= 100)))
            fz_fail("bias %g accepted", r.bias[i].bias);
    }
    if (api == SRV_API_CHAT) check_chat(&r);
    else check_completion(&r, n_vocab);
    if (n_vocab <= 32000) { /* the sampler's buffers for the big vocabulary would slow fuzzing ten times */
        hearth_err err;
        sampler *s = sampler_new(sp, n_vocab, &err);
        if (!s) fz_fail("the sampler refused accepted parameters: %s", err.msg);
        sampler_free(s);
    }
    srv_req_free(&r);
    return 0;
}
