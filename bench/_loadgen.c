/*
 * Closed-loop HTTP/1.1 load generator for bench/serving.py.
 *
 *   loadgen HOST PORT CONNECTIONS SECONDS TIMEOUT_S REQUESTS_FILE SAMPLES_OUT
 *
 * Keeps CONNECTIONS keep-alive connections busy for SECONDS, one request in flight on each,
 * cycling through the requests of REQUESTS_FILE (each a complete raw HTTP request preceded by
 * its length in bytes and a newline). Every completed response's latency (write of the first
 * byte to the last byte read, CLOCK_MONOTONIC nanoseconds) goes to SAMPLES_OUT as a
 * little-endian uint64; a JSON line of counters goes to stdout. The percentiles are computed
 * by the caller from the samples.
 *
 * Why not wrk: wrk corrects its latency histogram for "coordinated omission": for every
 * response slower than twice the mean interval between requests it adds synthetic samples
 * (latency - interval, latency - 2 * interval, ...), as if a fixed-rate client had kept
 * sending. Its p99 is therefore not the p99 of the requests sent, and the same pause costs a
 * faster server more synthetic samples. This tool records what happened; the caller can
 * apply wrk's correction to the same samples to show both.
 *
 * Responses need a Content-Length (all servers measured send one); anything else is counted
 * as a read error and the connection is reopened.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESPONSE (1 << 20)

typedef struct {
    int fd;
    size_t request;           /* index of the request in flight */
    size_t written;           /* bytes of it written so far */
    uint64_t start;           /* ns: first byte written */
    int writing;              /* waiting for EPOLLOUT */
    char *buf;                /* response bytes read so far */
    size_t have;
} conn;

static struct sockaddr_in server;
static char **requests;
static size_t *lengths, n_requests, next_request;
static uint64_t *samples;
static size_t n_samples, cap_samples;
static unsigned long completed, err_connect, err_read, err_write, err_status, err_timeout;
static int epfd;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void load_requests(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    size_t cap = 16;
    requests = malloc(cap * sizeof *requests);
    lengths = malloc(cap * sizeof *lengths);
    size_t len;
    while (fscanf(f, "%zu", &len) == 1 && fgetc(f) == '\n') {
        if (n_requests == cap) {
            cap *= 2;
            requests = realloc(requests, cap * sizeof *requests);
            lengths = realloc(lengths, cap * sizeof *lengths);
        }
        requests[n_requests] = malloc(len);
        if (fread(requests[n_requests], 1, len, f) != len) {
            fprintf(stderr, "%s: request %zu is truncated\n", path, n_requests + 1);
            exit(2);
        }
        lengths[n_requests++] = len;
    }
    fclose(f);
    if (n_requests == 0) {
        fprintf(stderr, "%s: no requests\n", path);
        exit(2);
    }
}

static void watch(conn *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) != 0) die("epoll_ctl");
}

static void send_next(conn *c);

/* Open (or reopen) the connection; on failure it stays closed (fd -1) and is retried later. */
static void open_conn(conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->have = 0;
    c->writing = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&server, sizeof server) != 0) {
        err_connect++;
        close(c->fd);
        c->fd = -1;
        return;
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    watch(c, EPOLLIN, EPOLL_CTL_ADD);
    send_next(c);
}

static void write_pending(conn *c) {
    const char *req = requests[c->request];
    while (c->written < lengths[c->request]) {
        ssize_t n = write(c->fd, req + c->written, lengths[c->request] - c->written);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->writing) watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
            c->writing = 1;
            return;
        }
        if (n <= 0) {
            err_write++;
            open_conn(c);
            return;
        }
        c->written += (size_t)n;
    }
    if (c->writing) watch(c, EPOLLIN, EPOLL_CTL_MOD);
    c->writing = 0;
}

static void send_next(conn *c) {
    c->request = next_request++ % n_requests;
    c->written = 0;
    c->start = now_ns();
    write_pending(c);
}

/* Content-Length of the header block hdr (NUL-terminated), or -1 if it has none. */
static long content_length(const char *hdr) {
    for (const char *line = strstr(hdr, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0) return strtol(line + 17, NULL, 10);
    }
    return -1;
}

static void record(uint64_t latency) {
    if (n_samples == cap_samples) {
        cap_samples = cap_samples ? 2 * cap_samples : 1 << 16;
        samples = realloc(samples, cap_samples * sizeof *samples);
        if (!samples) die("realloc");
    }
    samples[n_samples++] = latency;
}

/* Read what arrived; on a complete response record it and send the next request. */
static void read_response(conn *c) {
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->have, MAX_RESPONSE - c->have - 1);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {  /* closed or failed with a request in flight */
            err_read++;
            open_conn(c);
            return;
        }
        c->have += (size_t)n;
        c->buf[c->have] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) {
            if (c->have >= MAX_RESPONSE - 1) break;
            continue;
        }
        *end = '\0';  /* the header scans below stop at the headers */
        long body = content_length(c->buf);
        int closing = strcasestr(c->buf, "\r\nconnection: close") != NULL;
        *end = '\r';
        size_t total = (size_t)(end - c->buf) + 4 + (size_t)(body < 0 ? 0 : body);
        if (body < 0 || total >= MAX_RESPONSE) break;
        if (c->have < total) continue;
        if (c->have > total) break;  /* bytes nobody asked for */
        uint64_t latency = now_ns() - c->start;
        completed++;
        int status = c->have > 12 ? atoi(c->buf + 9) : 0;
        if (status < 200 || status > 299) err_status++;
        record(latency);
        c->have = 0;
        if (closing) {
            open_conn(c);
        } else {
            send_next(c);
        }
        return;
    }
    err_read++;  /* no Content-Length, too large, or malformed */
    open_conn(c);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SECONDS TIMEOUT_S REQUESTS_FILE SAMPLES_OUT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
        fprintf(stderr, "%s: not an IPv4 address\n", argv[1]);
        return 2;
    }
    int n_conns = atoi(argv[3]);
    double seconds = atof(argv[4]), timeout_s = atof(argv[5]);
    if (n_conns < 1 || seconds <= 0 || timeout_s <= 0) {
        fprintf(stderr, "CONNECTIONS, SECONDS and TIMEOUT_S must be positive\n");
        return 2;
    }
    load_requests(argv[6]);
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    conn *conns = calloc((size_t)n_conns, sizeof *conns);
    uint64_t begin = now_ns(), stop = begin + (uint64_t)(seconds * 1e9);
    uint64_t timeout = (uint64_t)(timeout_s * 1e9);
    for (int i = 0; i < n_conns; i++) {
        conns[i].fd = -1;
        conns[i].buf = malloc(MAX_RESPONSE);
        open_conn(&conns[i]);
    }
    struct epoll_event events[256];
    uint64_t now;
    while ((now = now_ns()) < stop) {
        int ready = epoll_wait(epfd, events, 256, 10);
        if (ready < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < ready; i++) {
            conn *c = events[i].data.ptr;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                read_response(c);
            } else if (events[i].events & EPOLLOUT) {
                write_pending(c);
            }
        }
        now = now_ns();
        for (int i = 0; i < n_conns; i++) {
            conn *c = &conns[i];
            if (c->fd < 0) {
                open_conn(c);  /* a refused connect is retried every 10 ms at most */
            } else if (now - c->start > timeout) {
                err_timeout++;
                open_conn(c);
            }
        }
    }
    FILE *out = fopen(argv[7], "wb");
    if (!out || fwrite(samples, sizeof *samples, n_samples, out) != n_samples || fclose(out) != 0)
        die(argv[7]);
    printf("{\"requests\":%lu,\"duration_us\":%llu,\"connect\":%lu,\"read\":%lu,\"write\":%lu,"
           "\"status\":%lu,\"timeout\":%lu}\n",
           completed, (unsigned long long)((now - begin) / 1000), err_connect, err_read, err_write,
           err_status, err_timeout);
    return 0;
}
