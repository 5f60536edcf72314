/* The server's side of the scheduler's admission refusals (see "Queue-wait admission" in
 * src/engine/sched.h): the OpenAI-shaped 503 each one becomes, with its Retry-After, and
 * the hearth_requests_refused_total counter. Never sends anything itself.
 *
 *   refusal                                   code                 metric reason
 *   queue full (max_queue)                    server_busy          queue_full
 *   estimated wait > max_queue_wait (arrival) queue_wait_exceeded  queue_wait
 *   still queued after max_queue_wait         queue_wait_exceeded  queue_wait_expired */
#ifndef SERVER_SRV_ADMIT_H
#define SERVER_SRV_ADMIT_H

#include "engine/sched.h"
#include "obs/obs.h"
#include "server/srv_error.h"
#include "server/srv_job.h"

#define SRV_CODE_QUEUE_WAIT "queue_wait_exceeded"

/* A BUSY answer of sched_submit (r filled by it, msg its message) as the API error; returns
 * the metric reason. */
const char *srv_admit_refused(srv_error *e, const sched_refusal *r, const char *msg);

/* A choice of j that finished with SCHED_FINISH_ERROR (err) as the API error. Status BUSY
 * (its wait in the queue passed max_queue_wait) is a 503 queue_wait_exceeded whose
 * Retry-After is the model's current wait estimate beyond the bound, counted in o; any
 * other status maps as srv_fail_status does. */
void srv_admit_finish_error(obs *o, const srv_job *j, const hearth_err *err, srv_error *e);

#endif
