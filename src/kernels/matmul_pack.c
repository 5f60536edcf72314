/* Repacking of weight matrices into the 16-row panels of the tiled matmul (layouts in
 * kern_internal.h): plain C, run once per matrix at load. Quants are unpacked with the
 * scalar unpackers, so the bit layout of each ggml format stays in quant_*.c.
 * Must never read a row past w->rows: the padding rows of the last panel are zeros. */
#include "base/checked.h"
#include "kernels/kern_internal.h"

static size_t panel_unit_bytes(uint32_t type, int64_t *unit_elems) {
    switch (type) {
    case GGML_Q4_K: *unit_elems = KERN_QKK; return sizeof(kern_panel_q4_k);
    case GGML_Q5_K: *unit_elems = KERN_QKK; return sizeof(kern_panel_q5_k);
    case GGML_Q6_K: *unit_elems = KERN_QKK; return sizeof(kern_panel_q6_k);
    case GGML_Q8_0: *unit_elems = 2 * KERN_QK32; return sizeof(kern_panel_q8_0);
    case GGML_Q4_0: *unit_elems = 2 * KERN_QK32; return sizeof(kern_panel_q4_0);
    case GGML_F32: *unit_elems = KERN_FLOAT_UNIT; return KERN_FLOAT_UNIT * KERN_PANEL * sizeof(float);
    case GGML_F16:
    case GGML_BF16: *unit_elems = KERN_FLOAT_UNIT; return KERN_FLOAT_UNIT * KERN_PANEL * sizeof(uint16_t);
    default: return 0;
    }
}

bool kern_panel_takes_floats(uint32_t type) {
    return type == GGML_F32 || type == GGML_F16 || type == GGML_BF16;
}

size_t kern_panel_bytes(uint32_t type, int64_t rows, int64_t cols) {
    int64_t ue;
    size_t ub = panel_unit_bytes(type, &ue);
    if (ub == 0 || rows <= 0 || cols <= 0 || cols % ue != 0) return 0;
    size_t panels = (size_t)((rows + KERN_PANEL - 1) / KERN_PANEL), bytes;
    if (!ck_mul(panels, (size_t)(cols / ue), &bytes) || !ck_mul(bytes, ub, &bytes)) return 0;
    return bytes;
}

/* Byte 4i+b of a 64-byte chunk: elements e0+b (low nibble) and e0+4+b (high) of row i. */
static void put_nibbles(uint8_t chunk[64], int i, const uint8_t *q, int e0) {
    for (int b = 0; b < 4; b++) chunk[4 * i + b] = (uint8_t)((q[e0 + b] & 0x0f) | (q[e0 + 4 + b] & 0x0f) << 4);
}

static void pack_q4_k(const kern_block_q4_k *blk, int i, kern_panel_q4_k *p) {
    uint8_t q[256], sc[8], mn[8];
    kern_k_unpack_scales_mins(blk->scales, sc, mn);
    kern_q4_k_unpack(blk, q);
    p->d[i] = blk->d;
    p->dmin[i] = blk->dmin;
    for (int j = 0; j < 8; j++) {
        p->sc[j][i] = sc[j];
        p->mn[j / 2][i][j % 2] = mn[j];
        for (int c = 0; c < 4; c++) put_nibbles(p->qs[j][c], i, q, 32 * j + 8 * c);
    }
}

static void pack_q5_k(const kern_block_q5_k *blk, int i, kern_panel_q5_k *p) {
    uint8_t q[256], sc[8], mn[8];
    kern_k_unpack_scales_mins(blk->scales, sc, mn);
    kern_q5_k_unpack(blk, q);
    p->d[i] = blk->d;
    p->dmin[i] = blk->dmin;
    for (int j = 0; j < 8; j++) {
        p->sc[j][i] = sc[j];
        p->mn[j / 2][i][j % 2] = mn[j];
        for (int c = 0; c < 4; c++) put_nibbles(p->qs[j][c], i, q, 32 * j + 8 * c);
        for (int b = 0; b < 4; b++) {
            uint8_t v = 0;
            for (int c = 0; c < 4; c++) {
                int e = 32 * j + 8 * c + b;
                v |= (uint8_t)(((q[e] >> 4) & 1) << (2 * c) | ((q[e + 4] >> 4) & 1) << (2 * c + 1));
            }
            p->qh[j][4 * i + b] = v;
        }
    }
}

static void pack_q6_k(const kern_block_q6_k *blk, int i, kern_panel_q6_k *p) {
    int8_t sq[256];
    uint8_t q[256];
    kern_q6_k_unpack(blk, sq);
    for (int e = 0; e < 256; e++) q[e] = (uint8_t)(sq[e] + 32);
    p->d[i] = blk->d;
    for (int u = 0; u < 8; u++) {
        p->sc[u][i][0] = blk->scales[2 * u];
        p->sc[u][i][1] = blk->scales[2 * u + 1];
        for (int c = 0; c < 4; c++) put_nibbles(p->ql[u][c], i, q, 32 * u + 8 * c);
        for (int h = 0; h < 2; h++)
            for (int b = 0; b < 4; b++) {
                uint8_t v = 0;
                for (int k = 0; k < 4; k++) {   /* chunk 2h+k/2, low (k even) or high elements */
                    int e = 32 * u + 8 * (2 * h + k / 2) + 4 * (k % 2) + b;
                    v |= (uint8_t)((q[e] >> 4) << (2 * k));
                }
                p->qh[u][h][4 * i + b] = v;
            }
    }
}

static void pack_q8_0(const kern_block_q8_0 *blk, int i, kern_panel_q8_0 *p) {
    for (int h = 0; h < 2; h++) {
        p->d[h][i] = blk[h].d;
        for (int c = 0; c < 8; c++)
            for (int b = 0; b < 4; b++) p->qs[h][c][4 * i + b] = (uint8_t)(blk[h].qs[4 * c + b] + 128);
    }
}

static void pack_q4_0(const kern_block_q4_0 *blk, int i, kern_panel_q4_0 *p) {
    for (int h = 0; h < 2; h++) {
        uint8_t q[32];
        for (int l = 0; l < 16; l++) {
            q[l] = blk[h].qs[l] & 0x0f;
            q[l + 16] = blk[h].qs[l] >> 4;
        }
        p->d[h][i] = blk[h].d;
        for (int c = 0; c < 4; c++) put_nibbles(p->qs[h][c], i, q, 8 * c);
    }
}

/* Row i's elements of one unit, each es bytes, to column-major places. */
static void pack_float(const uint8_t *row, size_t es, int i, uint8_t *p) {
    for (int c = 0; c < KERN_FLOAT_UNIT; c++) memcpy(p + ((size_t)c * KERN_PANEL + (size_t)i) * es, row + (size_t)c * es, es);
}

void kern_pack_panels(const kern_matrix *w, void *out) {
    int64_t ue = 1;
    size_t ub = panel_unit_bytes(w->type, &ue);
    int64_t units = w->cols / ue, panels = (w->rows + KERN_PANEL - 1) / KERN_PANEL;
    uint8_t *dst = out;
    memset(dst, 0, (size_t)panels * (size_t)units * ub);
    for (int64_t pn = 0; pn < panels; pn++)
        for (int i = 0; i < KERN_PANEL; i++) {
            int64_t r = pn * KERN_PANEL + i;
            if (r >= w->rows) break;
            const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
            for (int64_t u = 0; u < units; u++) {
                void *p = dst + ((size_t)pn * (size_t)units + (size_t)u) * ub;
                switch (w->type) {
                case GGML_Q4_K: pack_q4_k((const kern_block_q4_k *)row + u, i, p); break;
                case GGML_Q5_K: pack_q5_k((const kern_block_q5_k *)row + u, i, p); break;
                case GGML_Q6_K: pack_q6_k((const kern_block_q6_k *)row + u, i, p); break;
                case GGML_Q8_0: pack_q8_0((const kern_block_q8_0 *)row + 2 * u, i, p); break;
                case GGML_Q4_0: pack_q4_0((const kern_block_q4_0 *)row + 2 * u, i, p); break;
                case GGML_F32: pack_float(row + (size_t)u * KERN_FLOAT_UNIT * 4, 4, i, p); break;
                case GGML_F16:
                case GGML_BF16: pack_float(row + (size_t)u * KERN_FLOAT_UNIT * 2, 2, i, p); break;
                default: break;
                }
            }
        }
}
