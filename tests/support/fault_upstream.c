/* The fault-injecting upstream of the gateway tests (see fault_upstream.h). One thread
 * accepts; each connection gets its own thread, which reads one request, takes the next
 * scripted behaviour and closes the connection (Connection: close, so a body ends where
 * the connection does). Never used outside tests. */
#define _GNU_SOURCE
#include "fault_upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCRIPT 64
#define MAX_HEAD 65536
#define MAX_SEEN ((size_t)1 << 20)
#define STALL_MAX_MS 20000

struct fu_server {
    int fd, port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int stop;
    int conns;
    fu_reply dflt;
    fu_reply script[MAX_SCRIPT];
    int n_script, next_script;
    int requests;
    char *seen;
    size_t seen_len;
};

typedef struct conn {
    fu_server *s;
    int fd;
} conn;

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool send_str(int fd, const char *s) { return send_all(fd, s, strlen(s)); }

/* Waits up to ms; false as soon as the client hangs up or the server stops. */
static bool wait_ms(fu_server *s, int fd, int ms) {
    for (int waited = 0; waited < ms; waited += 20) {
        if (atomic_load(&s->stop)) return false;
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
        if (poll(&p, 1, 20) > 0) {
            char b[256];
            if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return false;
            if (recv(fd, b, sizeof b, 0) <= 0) return false;
        }
    }
    return true;
}

static void stall(fu_server *s, int fd) { wait_ms(s, fd, STALL_MAX_MS); }

static void reset(int fd) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

/* Reads the head and the body; appends both to s->seen. False on a broken request. */
static bool read_request(fu_server *s, int fd, char **out, size_t *out_len) {
    size_t cap = MAX_HEAD + 1, len = 0, head_end = 0;
    char *buf = malloc(cap);
    if (!buf) return false;
    long content_length = 0;
    for (;;) {
        if (head_end) {
            if (len >= head_end + (size_t)content_length) break;
        }
        if (len + 1 >= cap) {
            if (cap > ((size_t)64 << 20)) break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            return false;
        }
        len += (size_t)r;
        buf[len] = '\0';
        if (!head_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (e) {
                head_end = (size_t)(e - buf) + 4;
                const char *cl = strcasestr(buf, "\r\ncontent-length:");
                if (cl && cl < e) content_length = strtol(cl + 17, NULL, 10);
            }
        }
    }
    pthread_mutex_lock(&s->mu);
    if (s->seen_len + len < MAX_SEEN) {
        char *ns = realloc(s->seen, s->seen_len + len + 1);
        if (ns) {
            memcpy(ns + s->seen_len, buf, len);
            s->seen_len += len;
            ns[s->seen_len] = '\0';
            s->seen = ns;
        }
    }
    pthread_mutex_unlock(&s->mu);
    *out = buf;
    *out_len = len;
    return true;
}

static void send_chunk(int fd, bool chat, const char *text) {
    char b[1024];
    if (chat)
        snprintf(b, sizeof b,
                 "data: {\"id\":\"fu-1\",\"object\":\"chat.completion.chunk\",\"model\":\"fu\",\"choices\":[{\"index\":0,"
                 "\"delta\":{\"content\":\"%s\"},\"finish_reason\":null}]}\n\n",
                 text);
    else
        snprintf(b, sizeof b,
                 "data: {\"id\":\"fu-1\",\"object\":\"text_completion\",\"model\":\"fu\",\"choices\":[{\"index\":0,"
                 "\"text\":\"%s\",\"finish_reason\":null}]}\n\n",
                 text);
    send_str(fd, b);
}

static const char SSE_HEAD[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";

static void answer(fu_server *s, int fd, const fu_reply *r, bool stream, bool chat) {
    const char *text = r->text ? r->text : "hi";
    int chunks = r->chunks > 0 ? r->chunks : 3;
    char b[2048];
    if (r->delay_ms > 0 && !wait_ms(s, fd, r->delay_ms)) return;
    switch (r->kind) {
    case FU_OK:
        if (stream) {
            send_str(fd, SSE_HEAD);
            for (int i = 0; i < chunks; i++) send_chunk(fd, chat, text);
            send_str(fd, "data: [DONE]\n\n");
        } else {
            char body[1024];
            if (chat)
                snprintf(body, sizeof body,
                         "{\"id\":\"fu-1\",\"object\":\"chat.completion\",\"model\":\"fu\",\"choices\":[{\"index\":0,"
                         "\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},\"finish_reason\":\"stop\"}],"
                         "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}",
                         text);
            else
                snprintf(body, sizeof body,
                         "{\"id\":\"fu-1\",\"object\":\"text_completion\",\"model\":\"fu\",\"choices\":[{\"index\":0,"
                         "\"text\":\"%s\",\"finish_reason\":\"stop\"}]}",
                         text);
            snprintf(b, sizeof b,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: "
                     "close\r\n\r\n%s",
                     strlen(body), body);
            send_str(fd, b);
        }
        break;
    case FU_STATUS: {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"error\":{\"message\":\"upstream says %d\",\"type\":\"upstream_error\",\"param\":null,\"code\":"
                 "\"fu_%d\"}}",
                 r->status, r->status);
        char ra[128] = "";
        if (r->retry_after) snprintf(ra, sizeof ra, "Retry-After: %s\r\n", r->retry_after);
        snprintf(b, sizeof b,
                 "HTTP/1.1 %d Whatever\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\nConnection: "
                 "close\r\n\r\n%s",
                 r->status, ra, strlen(body), body);
        send_str(fd, b);
        break;
    }
    case FU_STALL_HEADERS:
        stall(s, fd);
        break;
    case FU_STALL_MIDSTREAM:
    case FU_RESET_MIDSTREAM:
    case FU_CLOSE_MIDSTREAM:
        send_str(fd, SSE_HEAD);
        for (int i = 0; i < chunks; i++) send_chunk(fd, chat, text);
        if (r->kind == FU_STALL_MIDSTREAM) stall(s, fd);
        if (r->kind == FU_RESET_MIDSTREAM) {
            sleep_ms(100); /* let the chunks reach the client before the reset */
            reset(fd);
        }
        break;
    case FU_RESET_AT_ONCE:
        reset(fd);
        break;
    case FU_MALFORMED:
        send_str(fd, SSE_HEAD);
        send_str(fd, "data: {\"choices\": [this is not json\n\n");
        stall(s, fd);
        break;
    case FU_HUGE_LINE: {
        send_str(fd, SSE_HEAD);
        send_str(fd, "data: ");
        char *junk = malloc(65536);
        if (!junk) break;
        memset(junk, 'a', 65536);
        for (size_t sent = 0; sent < (size_t)10 << 20; sent += 65536)
            if (!send_all(fd, junk, 65536)) break;
        free(junk);
        send_str(fd, "\n\n");
        break;
    }
    case FU_REDIRECT:
        snprintf(b, sizeof b,
                 "HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                 r->location ? r->location : "/");
        send_str(fd, b);
        break;
    }
}

static void *conn_thread(void *arg) {
    conn *c = arg;
    fu_server *s = c->s;
    char *req = NULL;
    size_t len = 0;
    if (read_request(s, c->fd, &req, &len)) {
        pthread_mutex_lock(&s->mu);
        s->requests++;
        fu_reply r = s->next_script < s->n_script ? s->script[s->next_script++] : s->dflt;
        pthread_mutex_unlock(&s->mu);
        bool stream = strstr(req, "\"stream\":true") != NULL;
        bool chat = strstr(req, "/chat/completions") != NULL;
        answer(s, c->fd, &r, stream, chat);
        free(req);
    }
    close(c->fd);
    pthread_mutex_lock(&s->mu);
    s->conns--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(c);
    return NULL;
}

static void *accept_thread(void *arg) {
    fu_server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        *c = (conn){.s = s, .fd = fd};
        pthread_mutex_lock(&s->mu);
        s->conns++;
        pthread_mutex_unlock(&s->mu);
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, conn_thread, c) != 0) {
            close(fd);
            free(c);
            pthread_mutex_lock(&s->mu);
            s->conns--;
            pthread_mutex_unlock(&s->mu);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

static int listen_loopback(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

fu_server *fu_start(const fu_reply *dflt) {
    fu_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->fd = listen_loopback(&s->port);
    if (s->fd < 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->stop, 0);
    s->dflt = dflt ? *dflt : (fu_reply){.kind = FU_OK};
    if (pthread_create(&s->acceptor, NULL, accept_thread, s) != 0) {
        close(s->fd);
        free(s);
        return NULL;
    }
    return s;
}

void fu_push(fu_server *s, const fu_reply *r) {
    pthread_mutex_lock(&s->mu);
    if (s->n_script < MAX_SCRIPT) s->script[s->n_script++] = *r;
    pthread_mutex_unlock(&s->mu);
}

void fu_set_default(fu_server *s, const fu_reply *r) {
    pthread_mutex_lock(&s->mu);
    s->dflt = *r;
    pthread_mutex_unlock(&s->mu);
}

int fu_port(const fu_server *s) { return s->port; }

int fu_requests(fu_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

char *fu_seen(fu_server *s) {
    pthread_mutex_lock(&s->mu);
    char *c = strdup(s->seen ? s->seen : "");
    pthread_mutex_unlock(&s->mu);
    return c;
}

void fu_stop(fu_server *s) {
    if (!s) return;
    atomic_store(&s->stop, 1);
    pthread_join(s->acceptor, NULL);
    close(s->fd);
    pthread_mutex_lock(&s->mu);
    while (s->conns > 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->seen);
    free(s);
}

int fu_dead_port(void) {
    int port = 0;
    int fd = listen_loopback(&port);
    if (fd < 0) return 1;
    close(fd);
    return port;
}
