/* A 64-byte ping client and an echo server for bench/tail_bench.py.
 *
 *   ping client PORT COUNT WARMUP SIZE   one connection, TCP_NODELAY; prints one round trip per line, in ns,
 *                                        then "#sched CPU_NS WAIT_NS SLICES" from /proc/self/schedstat
 *   ping echo                            echoes on an ephemeral 127.0.0.1 port (printed on the first line),
 *                                        a thread per connection, until stdin closes
 *
 * Written in C so the measuring side adds no interpreter pauses of its own: what shows in the tail is the
 * path under test (the proxy, or the kernel's loopback), not the client's garbage collector.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("connect");
        exit(2);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { perror("send"); exit(3); }
        buf += n;
        len -= (size_t)n;
    }
}

static void recv_all(int fd, char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { fprintf(stderr, "recv: %s\n", n == 0 ? "connection closed" : strerror(errno)); exit(4); }
        buf += n;
        len -= (size_t)n;
    }
}

static int client(int port, long count, long warmup, size_t size) {
    char *out = malloc(size), *in = malloc(size);
    uint64_t *samples = malloc(sizeof(uint64_t) * (size_t)count);
    if (!out || !in || !samples) return 5;
    memset(out, 'x', size);
    int fd = connect_to(port);
    for (long i = 0; i < warmup + count; i++) {
        uint64_t started = now_ns();
        send_all(fd, out, size);
        recv_all(fd, in, size);
        if (i >= warmup) samples[i - warmup] = now_ns() - started;
    }
    close(fd);
    for (long i = 0; i < count; i++) printf("%llu\n", (unsigned long long)samples[i]);
    /* the client's own time on CPU and waiting for one, in ns: "#sched CPU_NS WAIT_NS SLICES" */
    FILE *stat = fopen("/proc/self/schedstat", "r");
    unsigned long long cpu_ns, wait_ns, slices;
    if (stat != NULL && fscanf(stat, "%llu %llu %llu", &cpu_ns, &wait_ns, &slices) == 3)
        printf("#sched %llu %llu %llu\n", cpu_ns, wait_ns, slices);
    if (stat != NULL) fclose(stat);
    return 0;
}

static void *echo_one(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        send_all(fd, buf, (size_t)n);
    }
    close(fd);
    return NULL;
}

static void *accept_loop(void *arg) {
    int listener = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return NULL;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t thread;
        if (pthread_create(&thread, NULL, echo_one, (void *)(intptr_t)fd) == 0) pthread_detach(thread);
        else close(fd);
    }
}

static int echo(void) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 128) != 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &len) != 0) {
        perror("echo listen");
        return 2;
    }
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    pthread_t thread;
    pthread_create(&thread, NULL, accept_loop, (void *)(intptr_t)listener);
    char sink[256];
    while (read(0, sink, sizeof sink) > 0) {
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "client") == 0)
        return client(atoi(argv[2]), atol(argv[3]), atol(argv[4]), (size_t)atol(argv[5]));
    if (argc == 2 && strcmp(argv[1], "echo") == 0) return echo();
    fprintf(stderr, "usage: ping client PORT COUNT WARMUP SIZE | ping echo\n");
    return 1;
}
