/* Exact float64 bert forward pass for tests (see oracle_bert.h). Written independently
 * of src/model: it finds tensors by name itself and shares only the hyper-parameters.
 * GELU is the tanh form, as GGUF bert models use. */
#include "oracle_bert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

static double *load(const gguf_file *f, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return NULL;
    int64_t n = t->ne[0] * t->ne[1];
    float *tmp = malloc((size_t)n * sizeof(float));
    double *out = malloc((size_t)n * sizeof(double));
    kern_traits(t->type)->to_float(t->data, tmp, n);
    for (int64_t i = 0; i < n; i++) out[i] = tmp[i];
    free(tmp);
    return out;
}

static void linear(const double *w, const double *b, int64_t rows, int64_t cols, const double *x, double *y) {
    for (int64_t r = 0; r < rows; r++) {
        double s = b[r];
        for (int64_t c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
        y[r] = s;
    }
}

static void layernorm(double *x, const double *w, const double *b, int64_t n, double eps) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    double k = 1.0 / sqrt(var / (double)n + eps);
    for (int64_t i = 0; i < n; i++) x[i] = (x[i] - mean) * k * w[i] + b[i];
}

/* Bidirectional multi-head attention of token t over all n tokens. */
static void attend(const model_hparams *hp, const double *q, const double *k, const double *v, int64_t n, int64_t t,
                   double *sc, double *out) {
    int64_t nh = hp->n_head, nkv = hp->n_head_kv, dk = hp->head_dim_k, dv = hp->head_dim_v;
    for (int64_t h = 0; h < nh; h++) {
        int64_t kh = h / (nh / nkv);
        double mx = -INFINITY, sum = 0;
        for (int64_t p = 0; p < n; p++) {
            double s = 0;
            for (int64_t i = 0; i < dk; i++) s += q[(t * nh + h) * dk + i] * k[(p * nkv + kh) * dk + i];
            sc[p] = s / sqrt((double)dk);
            mx = fmax(mx, sc[p]);
        }
        for (int64_t p = 0; p < n; p++) sum += sc[p] = exp(sc[p] - mx);
        for (int64_t i = 0; i < dv; i++) {
            double s = 0;
            for (int64_t p = 0; p < n; p++) s += sc[p] / sum * v[(p * nkv + kh) * dv + i];
            out[h * dv + i] = s;
        }
    }
}

enum { W_Q, B_Q, W_K, B_K, W_V, B_V, W_O, B_O, N1_W, N1_B, W_UP, B_UP, W_DOWN, B_DOWN, N2_W, N2_B, N_W };
static const char *const names[N_W] = {
    "attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias", "attn_v.weight", "attn_v.bias",
    "attn_output.weight", "attn_output.bias", "attn_output_norm.weight", "attn_output_norm.bias",
    "ffn_up.weight", "ffn_up.bias", "ffn_down.weight", "ffn_down.bias", "layer_output_norm.weight",
    "layer_output_norm.bias"};

static void layer(const gguf_file *f, const model_hparams *hp, int64_t il, double *x, int64_t n) {
    int64_t e = hp->n_embd, ff = hp->n_ff, qd = hp->n_head * hp->head_dim_k, kd = hp->n_head_kv * hp->head_dim_k,
            vd = hp->n_head_kv * hp->head_dim_v, od = hp->n_head * hp->head_dim_v;
    double *w[N_W];
    char name[96];
    for (int i = 0; i < N_W; i++) {
        snprintf(name, sizeof name, "blk.%lld.%s", (long long)il, names[i]);
        w[i] = load(f, name);
    }
    double *q = malloc((size_t)(n * qd) * sizeof(double)), *k = malloc((size_t)(n * kd) * sizeof(double));
    double *v = malloc((size_t)(n * vd) * sizeof(double)), *att = malloc((size_t)od * sizeof(double));
    double *sc = malloc((size_t)n * sizeof(double)), *tmp = malloc((size_t)e * sizeof(double));
    double *up = malloc((size_t)ff * sizeof(double)), *y = malloc((size_t)(n * e) * sizeof(double));
    for (int64_t t = 0; t < n; t++) {
        linear(w[W_Q], w[B_Q], qd, e, x + t * e, q + t * qd);
        linear(w[W_K], w[B_K], kd, e, x + t * e, k + t * kd);
        linear(w[W_V], w[B_V], vd, e, x + t * e, v + t * vd);
    }
    for (int64_t t = 0; t < n; t++) {
        attend(hp, q, k, v, n, t, sc, att);
        linear(w[W_O], w[B_O], e, od, att, tmp);
        for (int64_t i = 0; i < e; i++) y[t * e + i] = x[t * e + i] + tmp[i];
        layernorm(y + t * e, w[N1_W], w[N1_B], e, hp->norm_eps);
        linear(w[W_UP], w[B_UP], ff, e, y + t * e, up);
        for (int64_t i = 0; i < ff; i++)
            up[i] = 0.5 * up[i] * (1.0 + tanh(sqrt(2.0 / M_PI) * (up[i] + 0.044715 * up[i] * up[i] * up[i])));
        linear(w[W_DOWN], w[B_DOWN], e, ff, up, tmp);
        for (int64_t i = 0; i < e; i++) y[t * e + i] += tmp[i];
        layernorm(y + t * e, w[N2_W], w[N2_B], e, hp->norm_eps);
    }
    memcpy(x, y, (size_t)(n * e) * sizeof(double));
    for (int i = 0; i < N_W; i++) free(w[i]);
    free(q), free(k), free(v), free(att), free(sc), free(tmp), free(up), free(y);
}

double *oracle_bert_hidden(const gguf_file *f, const model_hparams *hp, const int32_t *tokens, int64_t n) {
    int64_t e = hp->n_embd;
    double *x = malloc((size_t)(n * e) * sizeof(double));
    double *tok = load(f, "token_embd.weight"), *pos = load(f, "position_embd.weight");
    double *type = load(f, "token_types.weight"), *nw = load(f, "token_embd_norm.weight");
    double *nb = load(f, "token_embd_norm.bias");
    for (int64_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < e; i++) x[t * e + i] = tok[tokens[t] * e + i] + type[i] + pos[t * e + i];
        layernorm(x + t * e, nw, nb, e, hp->norm_eps);
    }
    free(tok), free(pos), free(type), free(nw), free(nb);
    for (int64_t il = 0; il < hp->n_layer; il++) layer(f, hp, il, x, n);
    return x;
}
