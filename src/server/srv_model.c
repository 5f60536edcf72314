/* The server side of the fleet: leases seen as models, the chat prompter attached to
 * each loaded model, request defaults and keep_alive, and fleet events as log lines
 * and lifecycle states as metrics (see srv_model.h). */
#include "server/srv_model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "server/srv_embed.h"
#include "server/srv_internal.h"
#include "server/srv_json.h"

#define TEMPLATE_FILE_MAX ((size_t)1 << 20)

const char *srv_model_id(const srv_model *m) { return fleet_lease_name(m); }
int64_t srv_model_created(const srv_model *m) { return fleet_lease_created(m); }
const tok_vocab *srv_model_vocab(const srv_model *m) { return fleet_lease_model(m)->vocab; }
const srv_prompter *srv_model_prompter(const srv_model *m) { return fleet_lease_attachment(m); }
sched *srv_model_sched(const srv_model *m) { return fleet_lease_sched(m); }
int64_t srv_model_n_ctx(const srv_model *m) { return fleet_lease_n_ctx(m); }
void srv_model_release(srv_model *m) { fleet_release(m); }

static int retry_after(double s) { return s < 1 ? 1 : s > 3600 ? 3600 : (int)ceil(s); }

bool srv_model_acquire(fleet *f, const char *name, double keep_alive_s, uint64_t deadline_ns, bool retry_failed,
                       srv_model **out, srv_error *e) {
    fleet_acquire_opts o = {.deadline_ns = deadline_ns, .keep_alive_s = keep_alive_s, .retry_failed = retry_failed};
    double ra = 0;
    hearth_err err = {0};
    hearth_status st = fleet_acquire(f, name, &o, out, &ra, &err);
    switch (st) {
    case HEARTH_OK:
        return true;
    case HEARTH_ERR_NOT_FOUND:
        return srv_fail(e, 404, "invalid_request_error", "model_not_found", "model", "The model '%.200s' does not exist",
                        name);
    case HEARTH_ERR_BUSY:
        srv_fail(e, 503, "server_error", "memory_budget_full", NULL, "%s", err.msg);
        break;
    case HEARTH_ERR_TIMEOUT:
        srv_fail(e, 503, "server_error", "model_loading", NULL, "the model '%.200s' is still loading", name);
        break;
    case HEARTH_ERR_CANCELLED:
        srv_fail(e, 503, "server_error", "server_stopping", NULL, "%s", err.msg);
        break;
    default:
        srv_fail(e, 503, "server_error", "model_failed", NULL, "the model '%.200s' failed to load: %s", name, err.msg);
        break;
    }
    e->retry_after_s = retry_after(ra);
    return false;
}

bool srv_model_keep_alive(const json_t *root, double *out, srv_error *e) {
    *out = -2; /* absent */
    json_t *v = json_object_get(root, "keep_alive");
    if (!v || json_is_null(v)) return true;
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (!isfinite(d)) return srv_invalid(e, "keep_alive", "'keep_alive' must be a finite number of seconds");
        *out = d < 0 ? CFG_FOREVER : d; /* a negative number means forever, as Ollama reads it */
        return true;
    }
    if (json_is_string(v) && cfg_parse_duration(json_string_value(v), true, out)) return true;
    return srv_invalid(e, "keep_alive", "'keep_alive' must be seconds or a duration such as \"10m\" or \"forever\"");
}

void srv_model_apply_defaults(const srv_model *m, srv_req *r) {
    const cfg_sampling *d = fleet_lease_sampling(m);
    const json_t *root = r->root;
#define ABSENT(key) (json_object_get(root, key) == NULL || json_is_null(json_object_get(root, key)))
    if ((d->set & CFG_S_TEMPERATURE) && ABSENT("temperature")) r->sampling.temperature = (float)d->temperature;
    if ((d->set & CFG_S_TOP_P) && ABSENT("top_p")) r->sampling.top_p = (float)d->top_p;
    if ((d->set & CFG_S_TOP_K) && ABSENT("top_k")) r->sampling.top_k = (int32_t)d->top_k;
    if ((d->set & CFG_S_MIN_P) && ABSENT("min_p")) r->sampling.min_p = (float)d->min_p;
    if ((d->set & CFG_S_REPEAT_PENALTY) && ABSENT("repetition_penalty") && ABSENT("repeat_penalty"))
        r->sampling.repeat_penalty = (float)d->repeat_penalty;
    if ((d->set & CFG_S_PRESENCE) && ABSENT("presence_penalty")) r->sampling.presence_penalty = (float)d->presence_penalty;
    if ((d->set & CFG_S_FREQUENCY) && ABSENT("frequency_penalty"))
        r->sampling.frequency_penalty = (float)d->frequency_penalty;
    if ((d->set & CFG_S_SEED) && !r->seed_given) {
        r->sampling.seed = (uint64_t)d->seed;
        r->seed_given = true;
    }
    if ((d->set & CFG_S_MAX_TOKENS) && r->max_tokens == 0) r->max_tokens = (int32_t)d->max_tokens;
#undef ABSENT
}

/* ---- hooks ------------------------------------------------------------------------- */

static hearth_status read_template_file(const char *path, char **out, size_t *len, hearth_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, HEARTH_ERR_NOT_FOUND, "%s: cannot open the chat template file", path);
    char *buf = mem_alloc(TEMPLATE_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, TEMPLATE_FILE_MAX + 1, f) : 0;
    bool bad = ferror(f);
    fclose(f);
    if (!buf) return err_set(err, HEARTH_ERR_NOMEM, "out of memory reading %s", path);
    if (bad || n > TEMPLATE_FILE_MAX) {
        mem_free(buf);
        return err_set(err, HEARTH_ERR_IO, "%s: %s", path, bad ? "read error" : "chat template larger than 1 MiB");
    }
    *out = buf;
    *len = n;
    return HEARTH_OK;
}

static hearth_status attach(void *ud, const cfg_model *mc, const gen_model *gm, void **out, hearth_err *err) {
    srv_prompter *p = NULL;
    hearth_status st;
    if (mc->chat_template) {
        char *src = NULL;
        size_t len = 0;
        st = read_template_file(mc->chat_template, &src, &len, err);
        if (st == HEARTH_OK) st = srv_prompter_new(gm->vocab, src, len, &p, err);
        mem_free(src);
    } else {
        gguf_str s;
        if (gguf_get_str(gm->file, "tokenizer.chat_template", &s) && s.len > 0)
            st = srv_prompter_new(gm->vocab, s.ptr, (size_t)s.len, &p, err);
        else
            st = srv_prompter_new(gm->vocab, NULL, 0, &p, err);
    }
    *out = p;
    return st;
}

static void detach(void *ud, void *attachment) {
    srv_embed_detach(((srv *)ud)->embed, attachment);
    srv_prompter_free(attachment);
}

static void state(void *ud, const char *name, fleet_state st, const char *error) {
    srv *s = ud;
    obs_model_state(s->obs, name, fleet_state_name(st), error);
}

static void event(void *ud, const char *level, const char *name, const char *what, const char *detail) {
    char msg[96];
    snprintf(msg, sizeof msg, "model %s", what);
    srv_log(ud, level,
            json_pack("{s:s, s:o, s:o}", "msg", msg, "model", srv_json_text(name, strlen(name)), "detail",
                      srv_json_text(detail, strlen(detail))));
}

void srv_model_hooks(fleet_hooks *h, void *srv_ud) {
    *h = (fleet_hooks){.ud = srv_ud, .attach = attach, .detach = detach, .event = event, .state = state};
}
