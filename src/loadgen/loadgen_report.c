/* The load generator's report as one JSON object: what was run, how requests ended
 * (errors by kind with a sample message), throughput over the run's window and latency
 * percentiles in milliseconds. Reads the result; never changes it. */
#include <string.h>

#include "base/mem.h"
#include "loadgen/loadgen.h"

static json_t *summary_json(double *v, size_t n) {
    loadgen_summary s = loadgen_summarize(v, n);
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "n", (json_int_t)s.n, "min", s.min * 1e3, "mean",
                     s.mean * 1e3, "p50", s.p50 * 1e3, "p90", s.p90 * 1e3, "p99", s.p99 * 1e3, "max", s.max * 1e3);
}

json_t *loadgen_report(const loadgen_config *cfg, const loadgen_result *r) {
    double *ttft = mem_alloc_array(r->n_req + 1, sizeof *ttft);
    double *tpot = mem_alloc_array(r->n_req + 1, sizeof *tpot);
    double *itl = mem_alloc_array(r->n_itl + 1, sizeof *itl);
    json_t *errors = json_object(), *samples = json_object(), *root = NULL;
    if (!ttft || !tpot || !itl || !errors || !samples) goto out;
    size_t n_ttft = 0, n_tpot = 0;
    long tokens = 0;
    for (size_t i = 0; i < r->n_req; i++) {
        const loadgen_request *q = &r->req[i];
        if (q->kind != LOADGEN_OK) continue;
        tokens += q->tokens;
        if (q->ttft_s >= 0) ttft[n_ttft++] = q->ttft_s;
        /* time per output token after the first, first to last content chunk: robust to chunks of several tokens */
        if (q->ttft_s >= 0 && q->tokens > 1) tpot[n_tpot++] = (q->last_s - q->ttft_s) / (double)(q->tokens - 1);
    }
    if (r->n_itl) memcpy(itl, r->itl_s, r->n_itl * sizeof *itl);
    long failed = 0;
    for (int k = 1; k < LOADGEN_N_KINDS; k++) {
        if (!r->count[k]) continue;
        failed += r->count[k];
        if (json_object_set_new(errors, loadgen_kind_name(k), json_integer(r->count[k])) ||
            json_object_set_new(samples, loadgen_kind_name(k), json_string(r->sample[k])))
            goto out;
    }
    double window = r->duration_s > 0 ? r->duration_s : 0;
    root = json_pack("{s:s, s:s, s:s, s:i, s:I, s:i, s:i, s:I, s:f, s:I, s:I, s:O, s:O, s:f, s:f, s:f, s:I, s:f}",
                     "endpoint", r->endpoint, "model", r->model, "api", cfg->chat ? "chat" : "completions",
                     "concurrency", cfg->concurrency, "requests", (json_int_t)r->n_req, "prompt_words",
                     cfg->prompt_words, "max_tokens", cfg->max_tokens, "seed", (json_int_t)cfg->seed, "temperature",
                     cfg->temperature, "ok", (json_int_t)r->count[LOADGEN_OK], "failed", (json_int_t)failed, "errors",
                     errors, "error_samples", samples, "duration_s", window, "request_throughput",
                     window > 0 ? (double)r->count[LOADGEN_OK] / window : 0.0, "output_tokens_per_s",
                     window > 0 ? (double)tokens / window : 0.0, "output_tokens", (json_int_t)tokens,
                     "timeout_s", cfg->timeout_s);
    if (root && (json_object_set_new(root, "ttft_ms", summary_json(ttft, n_ttft)) ||
                 json_object_set_new(root, "itl_ms", summary_json(itl, r->n_itl)) ||
                 json_object_set_new(root, "tpot_ms", summary_json(tpot, n_tpot)))) {
        json_decref(root);
        root = NULL;
    }
out:
    json_decref(errors);
    json_decref(samples);
    mem_free(ttft);
    mem_free(tpot);
    mem_free(itl);
    return root;
}
