/* Seed generator for the fuzz targets: `seed_gen TARGET DIR` writes starting inputs for
 * TARGET into DIR, made from the fixtures (tokenizer test texts, chat templates and their
 * contexts) and from small models written with the GGUF writer. Nothing it writes is
 * committed; the small hand-made seeds live in tests/fuzz/corpus/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "chat/chat.h"
#include "fz_util.h"
#include "tiny_model.h"
#include "gguf/writer.h"

static const char *out_dir;
static int n_written;

static void put(const void *head, size_t head_len, const void *body, size_t body_len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%04d", out_dir, n_written++);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(head, 1, head_len, f) != head_len || fwrite(body, 1, body_len, f) != body_len) {
        fprintf(stderr, "seed_gen: cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* ---- fuzz_gguf: small files with every value type and a few models ----------------- */
static void seeds_gguf(void) {
    static const char *const archs[] = {"llama", "qwen2", "qwen3"};
    static const uint32_t types[] = {GGML_F32, GGML_Q8_0};
    for (size_t a = 0; a < 3; a++)
        for (size_t t = 0; t < 2; t++) {
            tiny_spec s;
            tiny_spec_default(&s, archs[a]);
            s.n_embd = 32, s.n_ff = 32, s.n_vocab = 4, s.head_dim = 8, s.n_head = 4;
            s.weight_type = types[t];
            void *buf;
            size_t len;
            if (tiny_build(&s, &buf, &len)) put("", 0, buf, len), mem_free(buf);
        }
    gguf_writer *w = gguf_writer_new();
    hearth_err err;
    static const char *const strs[] = {"a", "", "\xe2\x96\x81hi"};
    static const int32_t ints[] = {1, -2, 3};
    static const float floats[] = {0.5f, -1.0f};
    static const uint8_t bools[] = {1, 0};
    float tdata[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int64_t ne[2] = {4, 2};
    if (!w || gguf_writer_set_str(w, "general.architecture", "llama", &err) ||
        gguf_writer_set_int(w, "u8", GGUF_V_UINT8, 7, &err) || gguf_writer_set_int(w, "i16", GGUF_V_INT16, -7, &err) ||
        gguf_writer_set_u64(w, "u64", UINT64_MAX, &err) || gguf_writer_set_float(w, "f64", GGUF_V_FLOAT64, 1e300, &err) ||
        gguf_writer_set_bool(w, "b", true, &err) || gguf_writer_set_arr(w, "ints", GGUF_V_INT32, ints, 3, &err) ||
        gguf_writer_set_arr(w, "floats", GGUF_V_FLOAT32, floats, 2, &err) ||
        gguf_writer_set_arr(w, "bools", GGUF_V_BOOL, bools, 2, &err) ||
        gguf_writer_set_str_arr(w, "strs", strs, 3, &err) ||
        gguf_writer_add_tensor(w, "t", GGML_F32, 2, ne, tdata, &err)) {
        fprintf(stderr, "seed_gen: writer: %s\n", err.msg);
        exit(1);
    }
    void *buf;
    size_t len;
    if (!gguf_writer_write_memory(w, &buf, &len, &err)) put("", 0, buf, len), mem_free(buf);
    gguf_writer_free(w);
}

/* ---- fuzz_model_load: each architecture and weight type, nothing broken ------------- */
static void seeds_model(void) {
    for (uint8_t arch = 0; arch < 4; arch++) {
        uint8_t plain[2 + TINY_K_COUNT + 1 + 3] = {arch, 0};
        plain[2 + TINY_K_COUNT + 1] = 1;
        put(plain, sizeof plain, "", 0);
        for (uint8_t wt = 0; wt < 11; wt++) {
            /* sizes: 4 heads, 2 kv heads, head 8 -> embd 32, ff 64, 1 layer, 16 tokens; the
             * weight type; 256-wide rows for the k-quants (index 8 and up) */
            uint8_t sized[] = {arch, (uint8_t)(1 | 4 | (wt >= 8 ? 8 : 0)), 3, 1, 3, 63, 0, 15, wt};
            put(sized, sizeof sized, "", 0);
        }
    }
}

/* ---- fuzz_tokenizer: the vocabularies' test texts --------------------------------- */
static void seeds_tokenizer(void) {
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    for (size_t v = 0; v < fz_n_vocab_files; v++) {
        char rel[512];
        snprintf(rel, sizeof rel, "%s.inp", fz_vocab_files[v]);
        size_t len;
        char *raw = fz_read_file(fz_fixture(rel), &len);
        if (!raw) continue;
        size_t pos = 0, k = 0;
        while (pos < len) {
            char *next = strstr(raw + pos, SEP);
            size_t end = next ? (size_t)(next - raw) : len;
            uint8_t head[2] = {(uint8_t)v, (uint8_t)(k++ % 4)};
            put(head, 2, raw + pos, end - pos);
            if (!next) break;
            pos = end + sizeof SEP - 1;
        }
        free(raw);
    }
}

/* ---- fuzz_chat_template: every template, and each with its fixture contexts -------- */
static void seeds_chat(void) {
    static const char *const cases[] = {"basic", "multiturn", "no_gen_prompt", "tools"};
    char *dirs[128];
    size_t n = fz_template_dirs(dirs, 128);
    uint8_t idx = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/template.jinja", dirs[i]);
        size_t len;
        char *src = fz_read_file(fz_fixture(path), &len);
        chat_template *t = NULL;
        hearth_err err;
        if (src && !chat_template_new(src, len, &t, &err)) {
            put("\0", 1, src, len);
            for (size_t c = 0; c < 4; c++) {
                snprintf(path, sizeof path, "%s/%s.input.json", dirs[i], cases[c]);
                char *ctx = fz_read_file(fz_fixture(path), &len);
                uint8_t head[2] = {1, idx};
                if (ctx) put(head, 2, ctx, len);
                free(ctx);
            }
            idx++;
        }
        chat_template_free(t);
        free(src);
        free(dirs[i]);
    }
}

/* ---- fuzz_stop ------------------------------------------------------------------- */
static void seeds_stop(void) {
    static const char a[] = "\x02\x04</s>\x03\xe4\xbd\xa0\x01\x00\x00\x00Hello</s> world";
    static const char b[] = "\x03\x02\n\n\x03###\x01\n\x05\x00\x00\x00line one\n## two\n\nend";
    static const char c[] = "\x01\x05" "ababc" "\x09\x00\x00\x00" "abababcab";
    put(a, sizeof a - 1, "", 0);
    put(b, sizeof b - 1, "", 0);
    put(c, sizeof c - 1, "", 0);
}

/* ---- fuzz_request: valid and refused bodies of both APIs --------------------------- */
static void seeds_request(void) {
    static const char *const chat[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        ("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"u\","
         "\"name\":\"n\"}],\"max_completion_tokens\":3,\"temperature\":0}"),
        "{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[],\"stop\":\"\"}",
    };
    static const char *const completion[] = {
        "{\"model\":\"m\",\"prompt\":\"Hello\",\"max_tokens\":4}",
        "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"],\"n\":4,\"stop\":[\"\\n\"]}",
        "{\"model\":\"m\",\"prompt\":[1,2,3],\"logit_bias\":{\"1\":100},\"seed\":9223372036854775807}",
        "{\"model\":\"m\",\"prompt\":\"a\",\"temperature\":1e308,\"top_k\":2147483647}",
    };
    for (size_t i = 0; i < sizeof chat / sizeof *chat; i++) put("\x01", 1, chat[i], strlen(chat[i]));
    for (size_t i = 0; i < sizeof completion / sizeof *completion; i++) put("\x02", 1, completion[i], strlen(completion[i]));
}

/* ---- fuzz_config: small configurations (the example is in tests/fuzz/corpus) -------- */
static void seeds_config(void) {
    static const char *const texts[] = {
        "models:\n  - name: m\n    path: m.gguf\n",
        ("server:\n  port: 8080\n  timeout: 10m\n  memory_budget: 75%\ndefaults:\n  ttl: 0\n  ctx: auto\n"
         "  threads: auto\nmodels: []\n"),
        "server: {port: 1, max_header: 1MiB}\nmodels:\n  - name: x\n    url: hf://o/r@abc/f.gguf\n    preload: true\n",
        "models:\n  - name: m\n    path: m.gguf\n    sampling:\n      temperature: 0.2\n      max_tokens: 512\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) put("", 0, texts[i], strlen(texts[i]));
}

/* ---- fuzz_sse: upstream streams as providers send them ------------------------------ */
static void seeds_sse(void) {
    static const char *const streams[] = {
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n",
        "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: ping\ndata: {}\n\n",
        ": keep-alive\r\n\r\ndata: a\r\ndata: b\r\n\r\n",
        "data:x\rdata: y\r\rid: 1\nretry: 5\n\n",
    };
    for (size_t i = 0; i < sizeof streams / sizeof *streams; i++) {
        static const uint8_t head[7] = {0, 0, 0, 7, 1, 2, 3};
        put(head, sizeof head, streams[i], strlen(streams[i]));
    }
}

/* ---- fuzz_toolfmt: replies with tool calls in each format -------------------------- */
static void seeds_toolfmt(void) {
    static const struct {
        uint8_t mode;
        const char *text;
    } replies[] = {
        {1, "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"},
        {2, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Z\u00fcrich\"}}; {\"name\": \"f\", \"parameters\": {}}"},
        {7, "{\"name\": \"f\", \"arguments\": {}}\n{\"name\": \"f\", \"arguments\": {\"a\": [1, 2]}}"},
        {3, "Sure [TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}, \"id\": \"abcDEF123\"}]"},
        {4, "[TOOL_CALLS]get_weather[CALL_ID]abcDEF123[ARGS]{\"city\": \"Oslo\"}[TOOL_CALLS]f[ARGS]{} f[ARGS]{}"},
        {0, "[TOOL_CALLS]f[ARGS]{}"},
    };
    for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
        uint8_t head[5] = {replies[i].mode, 1, 2, 3, (uint8_t)i};
        put(head, sizeof head, replies[i].text, strlen(replies[i].text));
    }
}

/* ---- fuzz_reasoning: replies with think blocks ------------------------------------ */
static void seeds_reasoning(void) {
    static const struct {
        uint8_t opened;
        const char *text;
    } replies[] = {
        {0, "<think>\nLet me see: 2 + 2.\n</think>\n\nThe answer is 4."},
        {1, "Let me see.</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>"},
        {0, "  \n<think></think>answer"},
        {1, "cut inside </thin"},
        {0, "no thinking <think>x</think>"},
    };
    for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
        uint8_t head[5] = {replies[i].opened, 1, 2, 3, (uint8_t)i};
        put(head, sizeof head, replies[i].text, strlen(replies[i].text));
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: seed_gen TARGET DIR\n");
        return 2;
    }
    out_dir = argv[2];
    const char *t = argv[1];
    if (!strcmp(t, "fuzz_gguf")) seeds_gguf();
    else if (!strcmp(t, "fuzz_model_load")) seeds_model();
    else if (!strcmp(t, "fuzz_tokenizer")) seeds_tokenizer();
    else if (!strcmp(t, "fuzz_chat_template")) seeds_chat();
    else if (!strcmp(t, "fuzz_stop")) seeds_stop();
    else if (!strcmp(t, "fuzz_request")) seeds_request();
    else if (!strcmp(t, "fuzz_config")) seeds_config();
    else if (!strcmp(t, "fuzz_sse")) seeds_sse();
    else if (!strcmp(t, "fuzz_toolfmt")) seeds_toolfmt();
    else if (!strcmp(t, "fuzz_reasoning")) seeds_reasoning();
    else {
        fprintf(stderr, "seed_gen: unknown target '%s'\n", t);
        return 2;
    }
    return 0;
}
