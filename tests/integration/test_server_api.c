/* `hearth serve` end to end over HTTP (libcurl) with the fixture llama model: models,
 * completions and chat (plain and streamed, equal at temperature 0), stop strings,
 * seeds, n, logprobs shapes, usage counts, a client hanging up mid-stream, deadlines,
 * a full queue (503 + Retry-After), a template's raise_exception, oversized input and a
 * catalogue of malformed requests (data/server_bad_requests.txt). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http_body.h"
#include "srvtest.h"
#include "testutil.h"

#define MODEL_FILE "models/llama-spm-f16.gguf"
#define MODEL_ID "llama-spm-f16"

static srvtest server;
static bool have_server;

static int setup(void **state) {
    if (!fixtures_available()) return 0;
    have_server = srvtest_start(&server, fixture_path(MODEL_FILE), "--slots 2 --ctx 2048 -t 1");
    return have_server ? 0 : -1;
}

static int teardown(void **state) {
    if (have_server) assert_int_equal(srvtest_stop(&server), 0);
    return 0;
}

#define NEED_SERVER()                                                                                                  \
    do {                                                                                                               \
        if (!have_server) skip();                                                                                      \
    } while (0)

/* POSTs body (MODEL replaced by the model id) and returns the parsed JSON; status in *status. */
static json_t *post(const srvtest *t, const char *path, const char *body, long *status, srvtest_resp *keep) {
    char buf[8192];
    const char *m = strstr(body, "MODEL");
    if (m) snprintf(buf, sizeof buf, "%.*s%s%s", (int)(m - body), body, MODEL_ID, m + 5);
    else snprintf(buf, sizeof buf, "%s", body);
    srvtest_resp r;
    assert_true(srvtest_http(t, "POST", path, buf, NULL, &r));
    *status = r.status;
    json_t *j = srvtest_json(&r);
    if (keep) *keep = r;
    else srvtest_resp_free(&r);
    return j;
}

/* root[k1] (or root[k1][k2]) when it is a string, else NULL. */
static const char *str_at(json_t *root, const char *k1, const char *k2) {
    json_t *v = json_object_get(root, k1);
    if (k2) v = json_object_get(v, k2);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Concatenated text of choice 0 in a list of stream chunks (chat delta.content or text). */
static char *stream_text(json_t *chunks, size_t choice) {
    size_t cap = 1, n = 0;
    char *out = calloc(1, 1);
    size_t i;
    json_t *c;
    json_array_foreach(chunks, i, c) {
        json_t *choices = json_object_get(c, "choices");
        for (size_t k = 0; k < json_array_size(choices); k++) {
            json_t *ch = json_array_get(choices, k);
            if ((size_t)json_integer_value(json_object_get(ch, "index")) != choice) continue;
            json_t *t = json_object_get(ch, "text");
            if (!t) t = json_object_get(json_object_get(ch, "delta"), "content");
            if (!json_is_string(t)) continue;
            size_t l = json_string_length(t);
            if (n + l + 1 > cap) {
                cap = (n + l + 1) * 2;
                out = realloc(out, cap);
            }
            memcpy(out + n, json_string_value(t), l);
            n += l;
            out[n] = '\0';
        }
    }
    return out;
}

static void test_health_and_models(void **state) {
    NEED_SERVER();
    srvtest_resp r;
    assert_true(srvtest_http(&server, "GET", "/health", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    srvtest_resp_free(&r);
    assert_true(srvtest_http(&server, "GET", "/v1/models", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    json_t *j = srvtest_json(&r);
    assert_string_equal(str_at(j, "object", NULL), "list");
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")), MODEL_ID);
    json_decref(j);
    srvtest_resp_free(&r);
    assert_true(srvtest_http(&server, "GET", "/v1/models/" MODEL_ID, NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    j = srvtest_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "model");
    assert_string_equal(json_string_value(json_object_get(j, "id")), MODEL_ID);
    json_decref(j);
    srvtest_resp_free(&r);
    assert_true(srvtest_http(&server, "GET", "/v1/models/other", NULL, NULL, &r));
    assert_int_equal(r.status, 404);
    j = srvtest_json(&r);
    assert_string_equal(str_at(j, "error", "code"), "model_not_found");
    json_decref(j);
    srvtest_resp_free(&r);
}

static void check_usage(json_t *usage, int64_t completion) {
    json_int_t p = json_integer_value(json_object_get(usage, "prompt_tokens"));
    json_int_t c = json_integer_value(json_object_get(usage, "completion_tokens"));
    json_int_t t = json_integer_value(json_object_get(usage, "total_tokens"));
    assert_true(p > 0);
    if (completion >= 0) assert_int_equal(c, completion);
    assert_int_equal(t, p + c);
}

static void test_completion_plain_and_stream(void **state) {
    NEED_SERVER();
    long st;
    json_t *j = post(&server, "/v1/completions",
                     "{\"model\":\"MODEL\",\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0}", &st,
                     NULL);
    assert_int_equal(st, 200);
    assert_string_equal(str_at(j, "object", NULL), "text_completion");
    assert_int_equal(strncmp(json_string_value(json_object_get(j, "id")), "cmpl-", 5), 0);
    assert_string_equal(json_string_value(json_object_get(j, "model")), MODEL_ID);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(ch, "finish_reason")), "length");
    const char *text = json_string_value(json_object_get(ch, "text"));
    assert_non_null(text);
    assert_true(strlen(text) > 0);
    check_usage(json_object_get(j, "usage"), 12);
    /* prompt_tokens is what the tokenizer gives (BOS included) */
    char *ids = NULL;
    char args[1024];
    snprintf(args, sizeof args, "tokenize -m '%s' 'Once upon a time'", fixture_path(MODEL_FILE));
    assert_int_equal(run_hearth(args, &ids, NULL), 0);
    int n_ids = 0;
    for (char *p = strtok(ids, " \n"); p; p = strtok(NULL, " \n")) n_ids++;
    free(ids);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")), n_ids);

    srvtest_resp r;
    json_decref(post(&server, "/v1/completions",
                     "{\"model\":\"MODEL\",\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,"
                     "\"stream\":true}",
                     &st, &r));
    assert_int_equal(st, 200);
    assert_string_equal(r.content_type, "text/event-stream");
    bool done = false;
    json_t *chunks = srvtest_sse(r.body, &done);
    assert_non_null(chunks);
    assert_true(done);
    char *streamed = stream_text(chunks, 0);
    assert_string_equal(streamed, text);
    json_t *last = json_array_get(chunks, json_array_size(chunks) - 1);
    assert_string_equal(str_at(last, "object", NULL), "text_completion");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(last, "choices"), 0),
                                                          "finish_reason")),
                        "length");
    free(streamed);
    json_decref(chunks);
    srvtest_resp_free(&r);
    json_decref(j);
}

static void test_chat_plain_and_stream(void **state) {
    NEED_SERVER();
    const char *body = "{\"model\":\"MODEL\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"Tell me a story.\"}],\"max_tokens\":10,\"temperature\":0%s}";
    char plain[1024], streamed[1024];
    snprintf(plain, sizeof plain, body, "");
    snprintf(streamed, sizeof streamed, body, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    long st;
    json_t *j = post(&server, "/v1/chat/completions", plain, &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(str_at(j, "object", NULL), "chat.completion");
    assert_int_equal(strncmp(json_string_value(json_object_get(j, "id")), "chatcmpl-", 9), 0);
    assert_non_null(json_object_get(j, "system_fingerprint"));
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    json_t *msg = json_object_get(ch, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    const char *text = json_string_value(json_object_get(msg, "content"));
    assert_non_null(text);
    check_usage(json_object_get(j, "usage"), 10);

    srvtest_resp r;
    json_decref(post(&server, "/v1/chat/completions", streamed, &st, &r));
    assert_int_equal(st, 200);
    bool done = false;
    json_t *chunks = srvtest_sse(r.body, &done);
    assert_non_null(chunks);
    assert_true(done);
    json_t *first = json_array_get(chunks, 0);
    assert_string_equal(str_at(first, "object", NULL), "chat.completion.chunk");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(first, "choices"), 0), "delta"),
                                          "role")),
        "assistant");
    char *s = stream_text(chunks, 0);
    assert_string_equal(s, text);
    free(s);
    json_t *usage_chunk = json_array_get(chunks, json_array_size(chunks) - 1);
    assert_int_equal(json_array_size(json_object_get(usage_chunk, "choices")), 0);
    /* include_usage: every earlier chunk says "usage": null, as OpenAI's do */
    for (size_t i = 0; i + 1 < json_array_size(chunks); i++)
        assert_true(json_is_null(json_object_get(json_array_get(chunks, i), "usage")));
    /* the same prompt again: equal counts, and all but its last token served from the prefix cache */
    json_t *u1 = json_object_get(j, "usage"), *u2 = json_object_get(usage_chunk, "usage");
    for (const char *const *k = (const char *const[]){"prompt_tokens", "completion_tokens", "total_tokens", NULL}; *k; k++)
        assert_int_equal(json_integer_value(json_object_get(u2, *k)), json_integer_value(json_object_get(u1, *k)));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(u2, "prompt_tokens_details"), "cached_tokens")),
                     json_integer_value(json_object_get(u1, "prompt_tokens")) - 1);
    json_t *fin = json_array_get(chunks, json_array_size(chunks) - 2);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(fin, "choices"), 0), "finish_reason")), "length");
    json_decref(chunks);
    srvtest_resp_free(&r);
    json_decref(j);
}

static char *completion_text(const char *extra, const char *finish_expected) {
    char body[1024];
    snprintf(body, sizeof body, "{\"model\":\"MODEL\",\"prompt\":\"The weather today\",\"max_tokens\":20%s}", extra);
    long st;
    json_t *j = post(&server, "/v1/completions", body, &st, NULL);
    assert_int_equal(st, 200);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    if (finish_expected) assert_string_equal(json_string_value(json_object_get(ch, "finish_reason")), finish_expected);
    char *t = strdup(json_string_value(json_object_get(ch, "text")));
    json_decref(j);
    return t;
}

static void test_stop_strings(void **state) {
    NEED_SERVER();
    char *full = completion_text(",\"temperature\":0,\"ignore_eos\":true", "length");
    size_t n = strlen(full);
    assert_true(n >= 8);
    /* a stop string from the middle of the greedy text, on a character boundary */
    size_t at = n / 2;
    while (at > 0 && ((unsigned char)full[at] & 0xC0) == 0x80) at--;
    size_t len = 1;
    while (at + len < n && ((unsigned char)full[at + len] & 0xC0) == 0x80) len++;
    char stop[16] = {0};
    memcpy(stop, full + at, len);
    size_t first = (size_t)(strstr(full, stop) - full);
    char extra[128];
    snprintf(extra, sizeof extra, ",\"temperature\":0,\"ignore_eos\":true,\"stop\":[\"%s\",\"zzzzqqqq\"]", stop);
    char *cut = completion_text(extra, "stop");
    printf("full %s | stop '%s' | cut %s\n", full, stop, cut);
    assert_int_equal(strlen(cut), first);
    assert_memory_equal(cut, full, first);
    free(cut);
    free(full);
}

static void test_seeds(void **state) {
    NEED_SERVER();
    char *a = completion_text(",\"temperature\":1.0,\"top_k\":0,\"top_p\":1,\"min_p\":0,\"seed\":42", NULL);
    char *b = completion_text(",\"temperature\":1.0,\"top_k\":0,\"top_p\":1,\"min_p\":0,\"seed\":42", NULL);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_n_choices(void **state) {
    NEED_SERVER();
    long st;
    json_t *j = post(&server, "/v1/chat/completions",
                     "{\"model\":\"MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":6,"
                     "\"temperature\":0,\"n\":2}",
                     &st, NULL);
    assert_int_equal(st, 200);
    json_t *choices = json_object_get(j, "choices");
    assert_int_equal(json_array_size(choices), 2);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(choices, i), "index")), (json_int_t)i);
    const char *a = str_at(json_array_get(choices, 0), "message", "content");
    const char *b = str_at(json_array_get(choices, 1), "message", "content");
    assert_string_equal(a, b); /* greedy: each choice is its own sequence with the same result */
    check_usage(json_object_get(j, "usage"), 12);
    json_decref(j);

    /* two prompts x n=2 in completions: four choices, prompt tokens counted per prompt */
    j = post(&server, "/v1/completions",
             "{\"model\":\"MODEL\",\"prompt\":[\"Hello\",\"Good morning\"],\"max_tokens\":3,\"n\":2,\"temperature\":0}",
             &st, NULL);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 4);
    check_usage(json_object_get(j, "usage"), 12);
    json_decref(j);
}

static void test_logprobs(void **state) {
    NEED_SERVER();
    long st;
    json_t *j = post(&server, "/v1/chat/completions",
                     "{\"model\":\"MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":5,"
                     "\"temperature\":0,\"logprobs\":true,\"top_logprobs\":3}",
                     &st, NULL);
    assert_int_equal(st, 200);
    json_t *content = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs"),
                                      "content");
    assert_int_equal(json_array_size(content), 5);
    size_t i;
    json_t *e;
    json_array_foreach(content, i, e) {
        assert_true(json_is_string(json_object_get(e, "token")));
        assert_true(json_is_array(json_object_get(e, "bytes")));
        double lp = json_number_value(json_object_get(e, "logprob"));
        assert_true(lp <= 0);
        json_t *top = json_object_get(e, "top_logprobs");
        assert_int_equal(json_array_size(top), 3);
        double prev = 1;
        for (size_t k = 0; k < 3; k++) {
            double t = json_number_value(json_object_get(json_array_get(top, k), "logprob"));
            assert_true(t <= prev);
            prev = t;
        }
        /* greedy: the chosen token is the most likely one */
        double best = json_number_value(json_object_get(json_array_get(top, 0), "logprob"));
        if (lp < best - 1e-4) fail_msg("greedy token logprob %f below the best %f", lp, best);
    }
    json_decref(j);

    j = post(&server, "/v1/completions",
             "{\"model\":\"MODEL\",\"prompt\":\"Hello\",\"max_tokens\":4,\"temperature\":0,\"logprobs\":2}", &st, NULL);
    assert_int_equal(st, 200);
    json_t *lp = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs");
    assert_int_equal(json_array_size(json_object_get(lp, "tokens")), 4);
    assert_int_equal(json_array_size(json_object_get(lp, "token_logprobs")), 4);
    assert_int_equal(json_array_size(json_object_get(lp, "top_logprobs")), 4);
    json_t *offs = json_object_get(lp, "text_offset");
    assert_int_equal(json_array_size(offs), 4);
    for (size_t k = 1; k < 4; k++)
        assert_true(json_integer_value(json_array_get(offs, k)) >= json_integer_value(json_array_get(offs, k - 1)));
    assert_true(json_object_size(json_array_get(json_object_get(lp, "top_logprobs"), 0)) >= 1);
    json_decref(j);
}

static void test_client_abort_frees_slot(void **state) {
    NEED_SERVER();
    /* two streams (both slots) hang up after their first bytes */
    for (int k = 0; k < 2; k++) {
        srvtest_resp r;
        assert_true(srvtest_http_abort_after(&server, "/v1/completions",
                                             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"Long story\",\"max_tokens\":1900,"
                                             "\"ignore_eos\":true,\"stream\":true}",
                                             300, &r));
        assert_int_equal(r.status, 200);
        srvtest_resp_free(&r);
    }
    /* the slots are free again: a short request finishes well before the long ones would */
    long st;
    json_t *j = post(&server, "/v1/completions",
                     "{\"model\":\"MODEL\",\"prompt\":\"Hi\",\"max_tokens\":3,\"temperature\":0,\"timeout\":30}", &st,
                     NULL);
    assert_int_equal(st, 200);
    json_decref(j);
}

static void test_deadline(void **state) {
    NEED_SERVER();
    long st;
    json_t *j = post(&server, "/v1/completions",
                     "{\"model\":\"MODEL\",\"prompt\":\"Hi\",\"max_tokens\":1900,\"ignore_eos\":true,\"timeout\":0.15}",
                     &st, NULL);
    assert_int_equal(st, 504);
    assert_non_null(str_at(j, "error", "message"));
    json_decref(j);

    srvtest_resp r;
    json_decref(post(&server, "/v1/chat/completions",
                     "{\"model\":\"MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":1900,"
                     "\"ignore_eos\":true,\"timeout\":0.25,\"stream\":true}",
                     &st, &r));
    if (st == 200) {
        /* output had begun: the stream ends with an error frame and no [DONE] */
        bool done = true;
        json_t *chunks = srvtest_sse(r.body, &done);
        assert_non_null(chunks);
        assert_false(done);
        json_t *last = json_array_get(chunks, json_array_size(chunks) - 1);
        assert_string_equal(str_at(last, "error", "code"), "timeout");
        json_decref(chunks);
    } else {
        assert_int_equal(st, 504);
    }
    srvtest_resp_free(&r);
}

static void test_template_raise_exception(void **state) {
    if (!fixtures_available()) skip();
    char path[] = "/tmp/hearth-tmpl-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *tmpl = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with a user "
                       "message') }}{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}";
    assert_int_equal(write(fd, tmpl, strlen(tmpl)), (ssize_t)strlen(tmpl));
    close(fd);
    char args[256];
    snprintf(args, sizeof args, "--slots 1 --ctx 256 -t 1 --chat-template-file %s", path);
    srvtest t;
    assert_true(srvtest_start(&t, fixture_path(MODEL_FILE), args));
    long st;
    json_t *j = post(&t, "/v1/chat/completions",
                     "{\"model\":\"MODEL\",\"messages\":[{\"role\":\"assistant\",\"content\":\"x\"}]}", &st, NULL);
    assert_int_equal(st, 400);
    assert_string_equal(str_at(j, "error", "message"), "Conversation must start with a user message");
    json_decref(j);
    /* a prompt longer than the context: both counts in the message */
    char big[6000];
    strcpy(big, "{\"model\":\"MODEL\",\"prompt\":\"");
    for (int i = 0; i < 400; i++) strcat(big, "word ");
    strcat(big, "\"}");
    j = post(&t, "/v1/completions", big, &st, NULL);
    assert_int_equal(st, 400);
    const char *msg = str_at(j, "error", "message");
    assert_non_null(strstr(msg, "256"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "context_length_exceeded");
    json_decref(j);
    assert_int_equal(srvtest_stop(&t), 0);
    unlink(path);
}

typedef struct busy_arg {
    srvtest *t;
    long status;
    char retry_after[32];
} busy_arg;

static void *busy_request(void *p) {
    busy_arg *a = p;
    srvtest_resp r;
    srvtest_http_abort_after(a->t, "/v1/completions",
                             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"Go\",\"max_tokens\":1500,\"ignore_eos\":true,"
                             "\"stream\":true,\"timeout\":20}",
                             32768, &r);
    a->status = r.status;
    snprintf(a->retry_after, sizeof a->retry_after, "%s", r.retry_after);
    srvtest_resp_free(&r);
    return NULL;
}

static void test_queue_full(void **state) {
    if (!fixtures_available()) skip();
    srvtest t;
    assert_true(srvtest_start(&t, fixture_path(MODEL_FILE), "--slots 1 --max-queue 1 --ctx 2048 -t 1"));
    busy_arg a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (busy_arg){.t = &t};
        pthread_create(&th[i], NULL, busy_request, &a[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    int busy = 0;
    for (int i = 0; i < 4; i++) {
        printf("request %d: %ld retry-after '%s'\n", i, a[i].status, a[i].retry_after);
        assert_true(a[i].status == 200 || a[i].status == 503);
        if (a[i].status == 503) {
            busy++;
            assert_true(atoi(a[i].retry_after) >= 1);
        }
    }
    /* one slot + one queue place: at least two of four concurrent long requests are refused */
    assert_true(busy >= 2);
    /* and the server still answers afterwards */
    long st;
    json_t *j = post(&t, "/v1/completions", "{\"model\":\"MODEL\",\"prompt\":\"Hi\",\"max_tokens\":2,\"timeout\":30}", &st,
                     NULL);
    assert_int_equal(st, 200);
    json_decref(j);
    assert_int_equal(srvtest_stop(&t), 0);
}

static void test_bad_requests(void **state) {
    NEED_SERVER();
    char path[1024];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "data/server_bad_requests.txt");
    char *data = read_file(path, NULL);
    assert_non_null(data);
    int cases = 0, failures = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !line[0]) continue;
        long want = strtol(line, &line, 10);
        char param[64], route[64];
        int used = 0;
        if (sscanf(line, " %63s %63s %n", param, route, &used) != 2) fail_msg("bad catalogue line: %s", line);
        const char *body = line + used;
        long st;
        json_t *j = post(&server, route, body, &st, NULL);
        json_t *err = json_object_get(j, "error");
        json_t *p = json_object_get(err, "param");
        bool ok = st == want && json_is_string(json_object_get(err, "message")) &&
                  json_is_string(json_object_get(err, "type")) &&
                  (!strcmp(param, "-") ? json_is_null(p) : json_is_string(p) && !strcmp(json_string_value(p), param));
        if (!ok) {
            char *dump = j ? json_dumps(j, JSON_COMPACT) : NULL;
            printf("MISMATCH %s %s: want %ld param %s, got %ld %s\n", route, body, want, param, st, dump ? dump : "(no json)");
            free(dump);
            failures++;
        }
        json_decref(j);
        cases++;
    }
    free(data);
    printf("%d malformed-request cases, %d mismatches\n", cases, failures);
    assert_true(cases >= 60);
    assert_int_equal(failures, 0);
}

/* GET path with one extra header of n bytes. */
static bool get_with_big_header(const char *path, size_t n, srvtest_resp *r) {
    *r = (srvtest_resp){0};
    char url[128], *header = malloc(n + 16);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", server.port, path);
    strcpy(header, "X-Padding: ");
    memset(header + strlen(header), 'p', n);
    header[11 + n] = '\0';
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    http_body sink;
    http_body_collect(c, &sink, &r->body, &r->len, 0);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else printf("big header request: %s\n", curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(header);
    return rc == CURLE_OK;
}

/* Requests after the first on one client handle reuse its connection (HTTP/1.1 keep-alive):
 * bodiless GETs, a completion and a GET after it. */
static void test_keep_alive(void **state) {
    NEED_SERVER();
    static const char *const paths[] = {"/health", "/v1/models", "/v1/completions", "/v1/models/" MODEL_ID, "/ready"};
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        srvtest_resp r = {0};
        char url[160];
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", server.port, paths[i]);
        bool post = !strcmp(paths[i], "/v1/completions");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post ? "{\"model\":\"" MODEL_ID "\",\"prompt\":\"Hello\",\"max_tokens\":2}" : NULL);
        curl_easy_setopt(c, CURLOPT_HTTPGET, post ? 0L : 1L);
        http_body sink;
        http_body_collect(c, &sink, &r.body, &r.len, 0);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        CURLcode rc = curl_easy_perform(c);
        if (rc != CURLE_OK) fail_msg("%s: %s", paths[i], curl_easy_strerror(rc));
        long status = 0, connects = -1;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
        if (status != 200) fail_msg("%s: status %ld: %s", paths[i], status, r.body ? r.body : "");
        if (i > 0 && connects != 0) fail_msg("%s opened %ld new connection(s), want the kept-alive one", paths[i], connects);
        free(r.body);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void test_http_limits(void **state) {
    NEED_SERVER();
    size_t n = (size_t)9 << 20;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    srvtest_resp r;
    assert_true(srvtest_http(&server, "POST", "/v1/completions", big, NULL, &r));
    assert_int_equal(r.status, 413);
    json_t *j = srvtest_json(&r);
    if (!str_at(j, "error", "code") || strcmp(str_at(j, "error", "code"), "request_too_large"))
        fail_msg("413 body is not an OpenAI error: %.200s", r.body ? r.body : "");
    json_decref(j);
    srvtest_resp_free(&r);
    free(big);
    /* headers over max_header (16 KiB): an OpenAI-shaped 431, not libmicrohttpd's HTML */
    assert_true(get_with_big_header("/v1/models", 64 << 10, &r));
    assert_int_equal(r.status, 431);
    j = srvtest_json(&r);
    if (!str_at(j, "error", "code") || strcmp(str_at(j, "error", "code"), "request_header_fields_too_large"))
        fail_msg("431 body is not an OpenAI error: %.200s", r.body ? r.body : "");
    json_decref(j);
    srvtest_resp_free(&r);
    assert_true(get_with_big_header("/v1/models", 8 << 10, &r));
    assert_int_equal(r.status, 200);
    srvtest_resp_free(&r);
    assert_true(srvtest_http(&server, "POST", "/v1/completions", "prompt=a", "text/xml", &r));
    assert_int_equal(r.status, 415);
    srvtest_resp_free(&r);
    /* curl -d sends form-urlencoded: a JSON body is accepted, anything else is bad JSON */
    assert_true(srvtest_http(&server, "POST", "/v1/completions", "prompt=a", "application/x-www-form-urlencoded", &r));
    assert_int_equal(r.status, 400);
    srvtest_resp_free(&r);
    assert_true(srvtest_http(&server, "POST", "/v1/completions",
                             "{\"model\":\"llama-spm-f16\",\"prompt\":\"a\",\"max_tokens\":1}",
                             "application/x-www-form-urlencoded", &r));
    assert_int_equal(r.status, 200);
    srvtest_resp_free(&r);
    assert_true(srvtest_http(&server, "GET", "/v1/chat/completions", NULL, NULL, &r));
    assert_int_equal(r.status, 405);
    srvtest_resp_free(&r);
    assert_true(srvtest_http(&server, "POST", "/v1/embeddingz", "{}", NULL, &r));
    assert_int_equal(r.status, 404);
    j = srvtest_json(&r);
    assert_non_null(str_at(j, "error", "message"));
    json_decref(j);
    srvtest_resp_free(&r);
    /* still alive */
    assert_true(srvtest_http(&server, "GET", "/health", NULL, NULL, &r));
    assert_int_equal(r.status, 200);
    srvtest_resp_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_and_models),
        cmocka_unit_test(test_completion_plain_and_stream),
        cmocka_unit_test(test_chat_plain_and_stream),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_n_choices),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_client_abort_frees_slot),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_http_limits),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_template_raise_exception),
        cmocka_unit_test(test_queue_full),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
