/* OpenAI response bodies (see srv_response.h). */
#include "server/srv_response.h"

#include <math.h>
#include <string.h>

#include "server/srv_json.h"
#include "server/srv_reasoning.h"
#include "server/srv_toolfmt.h"

const char *srv_finish_reason(sched_finish f) {
    return f == SCHED_FINISH_STOP ? "stop" : f == SCHED_FINISH_LENGTH ? "length" : NULL;
}

/* JSON number for a logprob; -inf (impossible token) is sent as a very large negative. */
static json_t *lp_number(float lp) { return json_real(isfinite(lp) ? (double)lp : -9999.0); }

static json_t *piece_of(const tok_vocab *v, int32_t id, char *buf, size_t cap, size_t *len) {
    size_t n = tok_piece(v, id, true, buf, cap);
    *len = n < cap ? n : cap;
    return srv_json_text(buf, *len);
}

json_t *srv_logprobs_chat(const tok_vocab *v, const sched_event *ev, int n_top) {
    json_t *arr = json_array();
    char buf[256], tb[256];
    for (int32_t i = 0; arr && i < ev->n_tokens; i++) {
        size_t len = 0;
        json_t *tok = piece_of(v, ev->tokens[i], buf, sizeof buf, &len);
        json_t *tops = json_array();
        for (int k = 0; tops && ev->top && k < n_top; k++) {
            const sched_top *t = &ev->top[(size_t)i * (size_t)n_top + (size_t)k];
            if (t->token < 0) continue;
            size_t tl = 0;
            json_t *tt = piece_of(v, t->token, tb, sizeof tb, &tl);
            if (json_array_append_new(tops, json_pack("{s:o, s:o, s:o}", "token", tt, "logprob", lp_number(t->logprob),
                                                      "bytes", srv_json_bytes(tb, tl))) != 0) {
                json_decref(tops);
                tops = NULL;
            }
        }
        json_t *entry = json_pack("{s:o, s:o, s:o, s:o}", "token", tok, "logprob",
                                  lp_number(ev->logprobs ? ev->logprobs[i] : 0.0f), "bytes", srv_json_bytes(buf, len),
                                  "top_logprobs", tops);
        if (json_array_append_new(arr, entry) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

bool srv_logprobs_completion(json_t **obj, const tok_vocab *v, const sched_event *ev, int n_top, int64_t *offset) {
    if (!*obj) *obj = json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
    if (!*obj) return false;
    json_t *toks = json_object_get(*obj, "tokens"), *lps = json_object_get(*obj, "token_logprobs"),
           *tops = json_object_get(*obj, "top_logprobs"), *offs = json_object_get(*obj, "text_offset");
    char buf[256], tb[256];
    for (int32_t i = 0; i < ev->n_tokens; i++) {
        size_t len = 0;
        json_t *tok = piece_of(v, ev->tokens[i], buf, sizeof buf, &len);
        json_t *top = json_object();
        for (int k = 0; top && ev->top && k < n_top; k++) {
            const sched_top *t = &ev->top[(size_t)i * (size_t)n_top + (size_t)k];
            if (t->token < 0) continue;
            size_t tl = tok_piece(v, t->token, true, tb, sizeof tb - 1);
            if (tl >= sizeof tb) tl = sizeof tb - 1;
            json_t *key = srv_json_text(tb, tl);
            if (!key || json_object_set_new(top, json_string_value(key), lp_number(t->logprob)) != 0) {
                json_decref(top);
                top = NULL;
            }
            json_decref(key);
        }
        int64_t chars = tok ? (int64_t)srv_utf8_chars(json_string_value(tok), json_string_length(tok)) : 0;
        bool ok = json_array_append_new(toks, tok) == 0 &&
                  json_array_append_new(lps, lp_number(ev->logprobs ? ev->logprobs[i] : 0.0f)) == 0 &&
                  json_array_append_new(tops, top) == 0 && json_array_append_new(offs, json_integer(*offset)) == 0;
        if (!ok) return false;
        *offset += chars;
    }
    return true;
}

size_t srv_utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

json_t *srv_usage(const srv_job *j) {
    int64_t p = srv_job_prompt_tokens(j), c = srv_job_completion_tokens(j);
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)p, "completion_tokens", (json_int_t)c,
                     "total_tokens", (json_int_t)(p + c), "prompt_tokens_details", "cached_tokens",
                     (json_int_t)srv_job_cached_tokens(j));
}

static json_t *envelope(const srv_job *j, const char *object) {
    return json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", j->id, "object", object, "created", (json_int_t)j->created,
                     "model", srv_model_id(j->model), "system_fingerprint", SRV_SYSTEM_FINGERPRINT);
}

static json_t *finish_json(const char *f) { return f ? json_string(f) : json_null(); }

json_t *srv_reply_full(const srv_job *j) {
    bool chat = j->req->api == SRV_API_CHAT;
    json_t *root = envelope(j, chat ? "chat.completion" : "text_completion");
    json_t *choices = json_array();
    for (size_t i = 0; root && choices && i < j->n_choices; i++) {
        const srv_choice *c = &j->ch[i];
        json_t *text = NULL;
        if (!chat && j->req->echo) {
            srv_buf both = {.max = (size_t)1 << 31};
            if (srv_job_echo(j, i, &both) && (c->text.len == 0 || srv_buf_add(&both, c->text.data, c->text.len)))
                text = srv_json_text(both.data ? both.data : "", both.len);
            srv_buf_free(&both);
        } else {
            text = srv_json_text(c->text.data ? c->text.data : "", c->text.len);
        }
        json_t *lp = c->logprobs ? json_incref(c->logprobs) : json_null();
        json_t *choice;
        if (chat) {
            if (c->logprobs) lp = json_pack("{s:o, s:n}", "content", lp, "refusal");
            json_t *content = NULL;
            json_t *calls = NULL;
            json_t *reasoning = NULL; /* tool calls are read from the answer only */
            if (text && srv_job_reads_reasoning(j)) srv_reason_split_json(j->think_opened, &text, &reasoning);
            if (j->req->forced_tool) {
                json_t *call = srv_tools_forced_call(j->req->forced_tool, c->text.data, c->text.len,
                                                     srv_job_call_closed_by(j, i, NULL));
                calls = call ? json_pack("[o]", call) : NULL;
                content = calls ? json_null() : NULL;
            } else if (srv_job_reads_tool_calls(j) && text) {
                calls = srv_toolfmt_extract(srv_prompter_toolfmt(srv_model_prompter(j->model)), j->req->tools,
                                            json_string_value(text), json_string_length(text), j->req->one_tool_call,
                                            &content);
            }
            if (calls) {
                json_decref(text);
                text = content;
            }
            choice = json_pack("{s:I, s:{s:s, s:o, s:n}, s:o, s:o}", "index", (json_int_t)i, "message", "role",
                               "assistant", "content", text, "refusal", "logprobs", lp, "finish_reason",
                               calls && c->finish != SCHED_FINISH_LENGTH ? json_string("tool_calls")
                                                                         : finish_json(srv_finish_reason(c->finish)));
            if (reasoning && choice &&
                json_object_set_new(json_object_get(choice, "message"), "reasoning_content", reasoning) != 0) {
                json_decref(choice);
                choice = NULL;
            } else if (reasoning && !choice) {
                json_decref(reasoning);
            }
            if (calls && choice && json_object_set_new(json_object_get(choice, "message"), "tool_calls", calls) != 0) {
                json_decref(choice);
                choice = NULL;
            } else if (calls && !choice) {
                json_decref(calls);
            }
        } else {
            choice = json_pack("{s:I, s:o, s:o, s:o}", "index", (json_int_t)i, "text", text, "logprobs", lp,
                               "finish_reason", finish_json(srv_finish_reason(c->finish)));
        }
        if (json_array_append_new(choices, choice) != 0) {
            json_decref(choices);
            choices = NULL;
        }
    }
    if (!root || !choices || json_object_set_new(root, "choices", choices) != 0 ||
        json_object_set_new(root, "usage", srv_usage(j)) != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* With stream_options.include_usage, OpenAI sends "usage": null in every chunk before the
 * final one that carries it. */
static json_t *usage_placeholder(const srv_job *j, json_t *root) {
    if (root && j->req->include_usage && json_object_set_new(root, "usage", json_null()) != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

json_t *srv_chunk_role(const srv_job *j, size_t choice) {
    json_t *root = envelope(j, "chat.completion.chunk");
    json_t *choices = json_pack("[{s:I, s:{s:s, s:s}, s:n, s:n}]", "index", (json_int_t)choice, "delta", "role",
                                "assistant", "content", "", "logprobs", "finish_reason");
    if (!root || !choices || json_object_set_new(root, "choices", choices) != 0) {
        json_decref(root);
        return NULL;
    }
    return usage_placeholder(j, root);
}

json_t *srv_chunk(const srv_job *j, size_t choice, const char *text, size_t len, json_t *logprobs, const char *finish) {
    bool chat = j->req->api == SRV_API_CHAT;
    json_t *root = envelope(j, chat ? "chat.completion.chunk" : "text_completion");
    json_t *lp = logprobs ? logprobs : json_null();
    json_t *c;
    if (chat) {
        if (logprobs) lp = json_pack("{s:o, s:n}", "content", lp, "refusal");
        json_t *delta = text ? json_pack("{s:o}", "content", srv_json_text(text, len)) : json_object();
        c = json_pack("{s:I, s:o, s:o, s:o}", "index", (json_int_t)choice, "delta", delta, "logprobs", lp,
                      "finish_reason", finish_json(finish));
    } else {
        c = json_pack("{s:I, s:o, s:o, s:o}", "index", (json_int_t)choice, "text",
                      srv_json_text(text ? text : "", text ? len : 0), "logprobs", lp, "finish_reason",
                      finish_json(finish));
    }
    if (!root || !c || json_object_set_new(root, "choices", json_pack("[o]", c)) != 0) {
        json_decref(root);
        return NULL;
    }
    return usage_placeholder(j, root);
}

json_t *srv_chunk_reasoning(const srv_job *j, size_t choice, const char *text, size_t len) {
    json_t *root = envelope(j, "chat.completion.chunk");
    json_t *c = json_pack("{s:I, s:{s:o}, s:n, s:n}", "index", (json_int_t)choice, "delta", "reasoning_content",
                          srv_json_text(text, len), "logprobs", "finish_reason");
    if (!root || !c || json_object_set_new(root, "choices", json_pack("[o]", c)) != 0) {
        json_decref(root);
        return NULL;
    }
    return usage_placeholder(j, root);
}

json_t *srv_chunk_tool_calls(const srv_job *j, size_t choice, json_t *calls) {
    json_t *root = envelope(j, "chat.completion.chunk");
    json_t *c = json_pack("{s:I, s:{s:o}, s:n, s:n}", "index", (json_int_t)choice, "delta", "tool_calls", calls,
                          "logprobs", "finish_reason");
    if (!root || !c || json_object_set_new(root, "choices", json_pack("[o]", c)) != 0) {
        json_decref(root);
        return NULL;
    }
    return usage_placeholder(j, root);
}

json_t *srv_chunk_usage(const srv_job *j) {
    json_t *root = envelope(j, j->req->api == SRV_API_CHAT ? "chat.completion.chunk" : "text_completion");
    if (!root || json_object_set_new(root, "choices", json_array()) != 0 ||
        json_object_set_new(root, "usage", srv_usage(j)) != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

json_t *srv_model_object(const char *id, int64_t created) {
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created", (json_int_t)created, "owned_by",
                     "hearth");
}
