/* Admission refusals as API errors and metrics (see srv_admit.h). */
#include "server/srv_admit.h"

#include <math.h>

#define RETRY_MAX_S 3600

static int retry_after(double s) { return !(s >= 1) ? 1 : s > RETRY_MAX_S ? RETRY_MAX_S : (int)ceil(s); }

const char *srv_admit_refused(srv_error *e, const sched_refusal *r, const char *msg) {
    bool wait = r->why == SCHED_BUSY_QUEUE_WAIT;
    srv_fail(e, 503, "server_error", wait ? SRV_CODE_QUEUE_WAIT : "server_busy", NULL, "%s", msg);
    e->retry_after_s = retry_after(r->retry_after_s);
    return wait ? "queue_wait" : "queue_full";
}

void srv_admit_finish_error(obs *o, const srv_job *j, const hearth_err *err, srv_error *e) {
    if (err->status != HEARTH_ERR_BUSY) {
        srv_fail_status(e, err->status ? err->status : HEARTH_ERR_INTERNAL, err->msg);
        return;
    }
    srv_fail(e, 503, "server_error", SRV_CODE_QUEUE_WAIT, NULL, "%s", err->msg);
    sched *s = srv_model_sched(j->model);
    e->retry_after_s = retry_after(s ? sched_queue_wait_s(s) - fleet_lease_max_queue_wait(j->model) : 1);
    obs_refused(o, srv_model_id(j->model), "queue_wait_expired");
}
