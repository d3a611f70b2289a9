/*
 * test_client: checks iosmux_inject against a running iosmuxd (normally `iosmuxd --simulate`).
 *
 *   test_client HOST PORT
 *
 * 1. The JSON reader on fixed inputs (escapes, surrogates, exact 64-bit integers, limits,
 *    malformed input).
 * 2. Every inject route against the daemon: the device document's values against GET / (the
 *    RSD endpoint) and /iosmux/status (udid, state, name, product type, iOS version); every
 *    advertised service port accepts a TCP connection; a too-long wait and an unknown device
 *    are refused.
 * 3. A long-poll across a tunnel rebuild: the tunnel is cancelled, a child process long-polls
 *    for a new generation while the parent restarts the tunnel; the child must get a ready
 *    document with a different generation.
 * Prints one "ok" line per check; exits 1 on the first failure.
 */
#define _POSIX_C_SOURCE 200809L

#include "iosmux_inject.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fprintf(stderr, "\n");                         \
            exit(1);                                       \
        }                                                  \
    } while (0)

static void ok(const char *what) { printf("ok %s\n", what); fflush(stdout); }

static void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static void test_json(void) {
    char err[256];
    iosmux_json *v;
    int64_t i;
    uint64_t u;
    const char *s;
    char deep[2 * (IOSMUX_INJECT_MAX_DEPTH + 2) + 1];
    size_t k;
    static const char *bad[] = {
        "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"abc", "\"\\x\"", "\"\\ud800\"",
        "\"\\udc00\"", "\"a\nb\"", "[1] x", "{\"a\":}", "\"\\u12\"", "\"\\", NULL};

    const char *doc = "{\"s\":\"a\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\n\\u0000z\",\"i\":-9223372036854775808,"
                      "\"u\":18446744073709551615,\"big\":18446744073709551616,\"f\":1.5e3,\"t\":true,"
                      "\"n\":null,\"a\":[1,[2,{}]],\"k\":{\"x\":{\"type\":\"string\",\"value\":\"y\"}}}";
    v = iosmux_json_parse(doc, strlen(doc), err, sizeof err);
    CHECK(v != NULL, "parse: %s", err);
    s = iosmux_json_string(iosmux_json_get(v, "s"));
    CHECK(s != NULL && iosmux_json_get(v, "s")->str_len == 13 &&
              memcmp(s, "a\xc3\xa9\xf0\x9f\x98\x80\"\\/\n\0z", 13) == 0,
          "string escapes decoded wrong");
    CHECK(iosmux_json_int64(iosmux_json_get(v, "i"), &i) == 0 && i == INT64_MIN, "int64 min");
    CHECK(iosmux_json_uint64(iosmux_json_get(v, "u"), &u) == 0 && u == UINT64_MAX, "uint64 max");
    CHECK(iosmux_json_uint64(iosmux_json_get(v, "big"), &u) != 0, "2^64 accepted as uint64");
    CHECK(iosmux_json_uint64(iosmux_json_get(v, "i"), &u) != 0, "negative accepted as uint64");
    CHECK(iosmux_json_int64(iosmux_json_get(v, "f"), &i) != 0, "1.5e3 accepted as an integer");
    CHECK(iosmux_json_get(v, "t")->boolean == 1 && iosmux_json_get(v, "n")->type == IOSMUX_JSON_NULL, "literals");
    CHECK(iosmux_json_get(v, "a")->count == 2 && iosmux_json_get(v, "a")->items[1]->count == 2, "arrays");
    CHECK(iosmux_json_get(v, "missing") == NULL, "missing key found");
    s = iosmux_xpc_string(iosmux_json_get(iosmux_json_get(v, "k"), "x"));
    CHECK(s != NULL && strcmp(s, "y") == 0, "typed string");
    iosmux_json_free(v);

    for (k = 0; bad[k] != NULL; k++) {
        v = iosmux_json_parse(bad[k], strlen(bad[k]), err, sizeof err);
        CHECK(v == NULL, "malformed input %zu accepted: %s", k, bad[k]);
    }
    /* Nesting: MAX_DEPTH levels parse, one more is refused. */
    for (k = 0; k <= IOSMUX_INJECT_MAX_DEPTH; k++) deep[k] = '[';
    for (k = 0; k <= IOSMUX_INJECT_MAX_DEPTH; k++) deep[IOSMUX_INJECT_MAX_DEPTH + 1 + k] = ']';
    v = iosmux_json_parse(deep, 2 * (IOSMUX_INJECT_MAX_DEPTH + 1), err, sizeof err);
    CHECK(v != NULL, "depth %d refused: %s", IOSMUX_INJECT_MAX_DEPTH, err);
    iosmux_json_free(v);
    memmove(deep + 1, deep, 2 * (IOSMUX_INJECT_MAX_DEPTH + 1));
    deep[0] = '[';
    deep[2 * (IOSMUX_INJECT_MAX_DEPTH + 2) - 1] = ']';
    v = iosmux_json_parse(deep, 2 * (IOSMUX_INJECT_MAX_DEPTH + 2), err, sizeof err);
    CHECK(v == NULL, "depth %d accepted", IOSMUX_INJECT_MAX_DEPTH + 1);
    ok("json reader");
}

/* get_json GETs path with status 200 and parses it. */
static iosmux_json *get_json(const iosmux_client *c, const char *path) {
    iosmux_response r;
    char err[256];
    iosmux_json *v;
    CHECK(iosmux_http_get(c->host, c->port, path, 90000, &r, err, sizeof err) == 0, "GET %s: %s", path, err);
    CHECK(r.status == 200, "GET %s: status %d: %s", path, r.status, r.body);
    v = iosmux_json_parse(r.body, r.body_len, err, sizeof err);
    CHECK(v != NULL, "GET %s: %s", path, err);
    iosmux_response_free(&r);
    return v;
}

static int tcp_connects(const char *host, const char *port) {
    struct addrinfo hints, *res;
    int fd, rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0) return 0;
    fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    rc = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0;
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    return rc;
}

static const char *str_field(const iosmux_json *obj, const char *key) {
    const char *s = iosmux_json_string(iosmux_json_get(obj, key));
    return s ? s : "";
}

int main(int argc, char **argv) {
    iosmux_client c;
    iosmux_json *list = NULL, *tunnels, *status;
    iosmux_device dev, down;
    char err[512], path[256], udid[160];
    const iosmux_json *devs, *entry, *sd = NULL, *svc;
    int i, code;
    size_t k;
    uint64_t gen1;
    pid_t child;

    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    c.host = argv[1];
    c.port = atoi(argv[2]);
    test_json();

    /* The device list: wait (bounded) for the simulator's phone to appear. */
    for (i = 0; i < 300; i++) {
        list = iosmux_devices_list(&c, err, sizeof err);
        CHECK(list != NULL, "device list: %s", err);
        devs = iosmux_json_get(list, "devices");
        if (devs->count > 0) break;
        iosmux_json_free(list);
        list = NULL;
        sleep_ms(100);
    }
    CHECK(list != NULL, "no device listed within 30 s");
    snprintf(udid, sizeof udid, "%s", str_field(iosmux_json_get(list, "devices")->items[0], "udid"));
    iosmux_json_free(list);
    ok("GET /iosmux/inject/v1/devices");

    CHECK(iosmux_device_get(&c, udid, 30, 0, &dev, NULL, err, sizeof err) == 0, "device: %s", err);
    CHECK(dev.ready, "device %s not ready after wait=30 (state %s)", udid, dev.state);
    CHECK(dev.generation > 0, "ready with generation 0");
    printf("device %s generation %llu rsd %s:%d name %s\n", dev.udid, (unsigned long long)dev.generation,
           dev.rsd_host, dev.rsd_port, dev.name ? dev.name : "(null)");
    ok("GET /iosmux/inject/v1/devices/{udid}?wait=30");

    /* rsd is GET /'s endpoint. */
    tunnels = get_json(&c, "/");
    entry = iosmux_json_get(tunnels, dev.udid);
    CHECK(entry != NULL && entry->type == IOSMUX_JSON_ARRAY && entry->count == 1, "GET / has no entry for %s", dev.udid);
    {
        int64_t port;
        CHECK(strcmp(str_field(entry->items[0], "tunnel-address"), dev.rsd_host) == 0 &&
                  iosmux_json_int64(iosmux_json_get(entry->items[0], "tunnel-port"), &port) == 0 && port == dev.rsd_port,
              "rsd %s:%d is not GET /'s %s", dev.rsd_host, dev.rsd_port, str_field(entry->items[0], "tunnel-address"));
    }
    iosmux_json_free(tunnels);
    ok("rsd matches GET /");

    /* udid, state, name and identity are the status route's. */
    status = get_json(&c, "/iosmux/status");
    devs = iosmux_json_get(status, "devices");
    for (k = 0; devs != NULL && k < devs->count; k++)
        if (strcmp(str_field(devs->items[k], "udid"), dev.udid) == 0) sd = devs->items[k];
    CHECK(sd != NULL, "status does not list %s", dev.udid);
    CHECK(strcmp(str_field(sd, "state"), dev.state) == 0, "state %s, status %s", dev.state, str_field(sd, "state"));
    CHECK(dev.name != NULL && strcmp(str_field(sd, "deviceName"), dev.name) == 0, "name %s, status deviceName %s",
          dev.name ? dev.name : "(null)", str_field(sd, "deviceName"));
    {
        const char *pt = iosmux_xpc_string(iosmux_xpc_dict_get(dev.properties, "ProductType"));
        const char *ov = iosmux_xpc_string(iosmux_xpc_dict_get(dev.properties, "OSVersion"));
        const char *ud = iosmux_xpc_string(iosmux_xpc_dict_get(dev.properties, "UniqueDeviceID"));
        CHECK(pt && strcmp(pt, str_field(sd, "productType")) == 0, "ProductType %s, status %s", pt ? pt : "-", str_field(sd, "productType"));
        CHECK(ov && strcmp(ov, str_field(sd, "iosVersion")) == 0, "OSVersion %s, status %s", ov ? ov : "-", str_field(sd, "iosVersion"));
        CHECK(ud && strcmp(ud, dev.udid) == 0, "UniqueDeviceID %s, udid %s", ud ? ud : "-", dev.udid);
    }
    iosmux_json_free(status);
    ok("values match /iosmux/status");

    /* Every service's port accepts connections on the rsd host. */
    svc = iosmux_xpc_value(dev.services);
    CHECK(svc != NULL && svc->type == IOSMUX_JSON_OBJECT && svc->count > 0, "no services");
    for (k = 0; k < svc->count; k++) {
        const char *port = iosmux_xpc_string(iosmux_xpc_dict_get(svc->items[k], "Port"));
        CHECK(port != NULL, "service %s has no string Port", svc->keys[k]);
        CHECK(tcp_connects(dev.rsd_host, port), "service %s: %s:%s refuses", svc->keys[k], dev.rsd_host, port);
    }
    printf("%zu services\n", svc->count);
    ok("every service port accepts a connection");

    /* Bounds and errors. */
    {
        iosmux_response r;
        snprintf(path, sizeof path, "/iosmux/inject/v1/devices/%s?wait=61", dev.udid);
        CHECK(iosmux_http_get(c.host, c.port, path, 10000, &r, err, sizeof err) == 0 && r.status == 400,
              "wait=61 not refused");
        iosmux_response_free(&r);
        CHECK(iosmux_device_get(&c, "nope", 0, 0, &down, &code, err, sizeof err) != 0 && code == 404, "unknown device: %d", code);
        CHECK(iosmux_device_get(&c, dev.udid, 61, 0, &down, NULL, err, sizeof err) != 0, "client let wait=61 through");
        CHECK(iosmux_device_get(&c, "../x", 0, 0, &down, NULL, err, sizeof err) != 0, "client let a path through as udid");
    }
    ok("bounds and errors");

    /* A long-poll across a tunnel rebuild. */
    gen1 = dev.generation;
    snprintf(path, sizeof path, "/cancel?udid=%s", dev.udid);
    iosmux_json_free(get_json(&c, path));
    CHECK(iosmux_device_get(&c, dev.udid, 0.2, 0, &down, NULL, err, sizeof err) == 0, "after cancel: %s", err);
    CHECK(!down.ready && down.handshake == NULL && down.generation == gen1, "cancelled device: ready %d generation %llu",
          down.ready, (unsigned long long)down.generation);
    iosmux_device_free(&down);
    ok("cancelled device is not ready");

    fflush(stdout);
    child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        iosmux_device next;
        if (iosmux_device_get(&c, dev.udid, 60, gen1, &next, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "FAIL long-poll: %s\n", err);
            _exit(1);
        }
        if (!next.ready || next.generation == gen1) {
            fprintf(stderr, "FAIL long-poll: ready %d generation %llu (was %llu)\n", next.ready,
                    (unsigned long long)next.generation, (unsigned long long)gen1);
            _exit(1);
        }
        printf("long-poll returned generation %llu (was %llu)\n", (unsigned long long)next.generation,
               (unsigned long long)gen1);
        fflush(stdout);
        iosmux_device_free(&next);
        _exit(0);
    }
    sleep_ms(300); /* let the child's request reach the daemon first; correctness does not depend on it */
    snprintf(path, sizeof path, "/start-tunnel?udid=%s", dev.udid);
    iosmux_json_free(get_json(&c, path));
    {
        int st;
        CHECK(waitpid(child, &st, 0) == child, "waitpid");
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "long-poll child failed");
    }
    ok("long-poll across a tunnel rebuild");

    iosmux_device_free(&dev);
    printf("PASS\n");
    return 0;
}
