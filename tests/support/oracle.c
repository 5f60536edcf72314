/* Exact float64 forward pass for tests (see oracle.h). Written independently of
 * src/model: it finds tensors by name itself and shares only the hyper-parameters. */
#include "oracle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

/* A tensor as doubles (row-major [ne1][ne0]), or NULL when the file lacks it. */
static double *load(const gguf_file *f, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t && !strcmp(name, "output.weight")) t = gguf_find_tensor(f, "token_embd.weight");
    if (!t) return NULL;
    int64_t n = t->ne[0] * t->ne[1];
    float *tmp = malloc((size_t)n * sizeof(float));
    double *out = malloc((size_t)n * sizeof(double));
    kern_traits(t->type)->to_float(t->data, tmp, n);
    for (int64_t i = 0; i < n; i++) out[i] = tmp[i];
    free(tmp);
    return out;
}

static double *load_layer(const gguf_file *f, int64_t il, const char *what) {
    char name[96];
    snprintf(name, sizeof name, "blk.%lld.%s", (long long)il, what);
    return load(f, name);
}

static void matvec(const double *w, int64_t rows, int64_t cols, const double *x, const double *bias, double *y) {
    for (int64_t r = 0; r < rows; r++) {
        double s = bias ? bias[r] : 0.0;
        for (int64_t c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
        y[r] = s;
    }
}

static void rmsnorm(double *x, const double *w, int64_t n, double eps, double *y) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
    double k = 1.0 / sqrt(s / (double)n + eps);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * k * w[i];
}

/* Per-head norm (when w is given), then RoPE, of n_heads heads of hd at position pos. */
static void heads(double *x, const model_hparams *hp, const double *w, int64_t n_heads, int64_t pos) {
    int64_t hd = hp->head_dim_k, half = hp->n_rot / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        double *v = x + h * hd;
        if (w) rmsnorm(v, w, hd, hp->norm_eps, v);
        for (int64_t i = 0; i < half; i++) {
            double th = (double)pos * hp->rope_scale * pow(hp->rope_base, -2.0 * (double)i / (double)hp->n_rot);
            int64_t a = hp->rope_neox ? i : 2 * i, b = hp->rope_neox ? i + half : 2 * i + 1;
            double x0 = v[a], x1 = v[b];
            v[a] = x0 * cos(th) - x1 * sin(th);
            v[b] = x0 * sin(th) + x1 * cos(th);
        }
    }
}

static void attend(const model_hparams *hp, const double *q, const double *k, const double *v, int64_t t,
                   double *sc, double *out) {
    int64_t nh = hp->n_head, nkv = hp->n_head_kv, dk = hp->head_dim_k, dv = hp->head_dim_v;
    for (int64_t h = 0; h < nh; h++) {
        int64_t kh = h / (nh / nkv);
        double mx = -INFINITY, sum = 0;
        for (int64_t p = 0; p <= t; p++) {
            double s = 0;
            for (int64_t i = 0; i < dk; i++) s += q[(t * nh + h) * dk + i] * k[(p * nkv + kh) * dk + i];
            sc[p] = s / sqrt((double)dk);
            mx = fmax(mx, sc[p]);
        }
        for (int64_t p = 0; p <= t; p++) sum += sc[p] = exp(sc[p] - mx);
        for (int64_t i = 0; i < dv; i++) {
            double s = 0;
            for (int64_t p = 0; p <= t; p++) s += sc[p] / sum * v[(p * nkv + kh) * dv + i];
            out[h * dv + i] = s;
        }
    }
}

float *oracle_logits(const gguf_file *f, const model_hparams *hp, const int32_t *tokens, int64_t n) {
    int64_t e = hp->n_embd, nh = hp->n_head, nkv = hp->n_head_kv, dk = hp->head_dim_k, dv = hp->head_dim_v;
    int64_t ff = hp->n_ff, nv = hp->n_vocab;
    double *x = malloc((size_t)(n * e) * sizeof(double)), *xn = malloc((size_t)e * sizeof(double));
    double *q = malloc((size_t)(n * nh * dk) * sizeof(double)), *k = malloc((size_t)(n * nkv * dk) * sizeof(double));
    double *v = malloc((size_t)(n * nkv * dv) * sizeof(double)), *att = malloc((size_t)(nh * dv) * sizeof(double));
    double *g = malloc((size_t)ff * sizeof(double)), *u = malloc((size_t)ff * sizeof(double));
    double *tmp = malloc((size_t)e * sizeof(double)), *sc = malloc((size_t)n * sizeof(double));
    double *emb = load(f, "token_embd.weight");
    for (int64_t t = 0; t < n; t++) memcpy(x + t * e, emb + tokens[t] * e, (size_t)e * sizeof(double));
    free(emb);
    static const char *names[] = {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                                  "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight",
                                  "ffn_down.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias",
                                  "attn_q_norm.weight", "attn_k_norm.weight"};
    enum { N_W = sizeof names / sizeof names[0] };
    for (int64_t il = 0; il < hp->n_layer; il++) {
        double *w[N_W];
        for (int i = 0; i < N_W; i++) w[i] = load_layer(f, il, names[i]);
        for (int64_t t = 0; t < n; t++) {
            rmsnorm(x + t * e, w[0], e, hp->norm_eps, xn);
            matvec(w[1], nh * dk, e, xn, w[9], q + t * nh * dk);
            matvec(w[2], nkv * dk, e, xn, w[10], k + t * nkv * dk);
            matvec(w[3], nkv * dv, e, xn, w[11], v + t * nkv * dv);
            heads(q + t * nh * dk, hp, w[12], nh, t);
            heads(k + t * nkv * dk, hp, w[13], nkv, t);
        }
        for (int64_t t = 0; t < n; t++) {
            attend(hp, q, k, v, t, sc, att);
            matvec(w[4], e, nh * dv, att, NULL, tmp);
            for (int64_t i = 0; i < e; i++) x[t * e + i] += tmp[i];
            rmsnorm(x + t * e, w[5], e, hp->norm_eps, xn);
            matvec(w[6], ff, e, xn, NULL, g);
            matvec(w[7], ff, e, xn, NULL, u);
            for (int64_t i = 0; i < ff; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            matvec(w[8], e, ff, g, NULL, tmp);
            for (int64_t i = 0; i < e; i++) x[t * e + i] += tmp[i];
        }
        for (int i = 0; i < N_W; i++) free(w[i]);
    }
    double *onorm = load(f, "output_norm.weight"), *out = load(f, "output.weight");
    float *logits = malloc((size_t)(n * nv) * sizeof(float));
    double *row = malloc((size_t)nv * sizeof(double));
    for (int64_t t = 0; t < n; t++) {
        rmsnorm(x + t * e, onorm, e, hp->norm_eps, xn);
        matvec(out, nv, e, xn, NULL, row);
        for (int64_t i = 0; i < nv; i++) logits[t * nv + i] = (float)row[i];
    }
    free(row), free(onorm), free(out), free(x), free(xn), free(q), free(k), free(v), free(att), free(g), free(u);
    free(tmp), free(sc);
    return logits;
}
