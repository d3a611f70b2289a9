/* iosmux_inject: see iosmux_inject.h. C99 plus POSIX sockets. */
#define _POSIX_C_SOURCE 200809L
#ifdef __APPLE__
#define _DARWIN_C_SOURCE /* SO_NOSIGPIPE, hidden under plain POSIX */
#endif

#include "iosmux_inject.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    if (err == NULL || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p == NULL) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- JSON ---------------------------------------------------------------------------- */

typedef struct {
    const char *p, *end;
    char *err;
    size_t errlen;
} parser;

static void ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static iosmux_json *node(iosmux_json_type t) {
    iosmux_json *v = calloc(1, sizeof *v);
    if (v != NULL) v->type = t;
    return v;
}

void iosmux_json_free(iosmux_json *v) {
    size_t i;
    if (v == NULL) return;
    for (i = 0; i < v->count; i++) {
        iosmux_json_free(v->items[i]);
        if (v->keys != NULL) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8(unsigned cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* parse_string reads a JSON string at ps->p (on the quote) into a new buffer. */
static char *parse_string(parser *ps, size_t *len) {
    const char *s;
    char *out, *o;
    if (ps->p >= ps->end || *ps->p != '"') { seterr(ps->err, ps->errlen, "json: string expected"); return NULL; }
    s = ++ps->p;
    /* The decoded string is never longer than the escaped one. */
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p == '\\' && ps->end - ps->p >= 2) ps->p++;
        ps->p++;
    }
    if (ps->p >= ps->end) { seterr(ps->err, ps->errlen, "json: unterminated string"); return NULL; }
    out = o = malloc((size_t)(ps->p - s) + 1);
    if (out == NULL) { seterr(ps->err, ps->errlen, "json: out of memory"); return NULL; }
    while (s < ps->p) {
        unsigned char c = (unsigned char)*s++;
        unsigned cp, lo;
        if (c < 0x20) { seterr(ps->err, ps->errlen, "json: control character in string"); goto fail; }
        if (c != '\\') { *o++ = (char)c; continue; }
        switch (*s++) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (ps->p - s < 4 || hex4(s, &cp) != 0) { seterr(ps->err, ps->errlen, "json: bad \\u escape"); goto fail; }
            s += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (ps->p - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    seterr(ps->err, ps->errlen, "json: unpaired surrogate");
                    goto fail;
                }
                s += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                seterr(ps->err, ps->errlen, "json: unpaired surrogate");
                goto fail;
            }
            o += utf8(cp, o);
            break;
        default:
            seterr(ps->err, ps->errlen, "json: bad escape");
            goto fail;
        }
    }
    *o = '\0';
    *len = (size_t)(o - out);
    ps->p++; /* closing quote */
    return out;
fail:
    free(out);
    return NULL;
}

static iosmux_json *parse_value(parser *ps, int depth);

static int push(iosmux_json *v, iosmux_json *item, char *key, size_t *cap) {
    if (v->count == *cap) {
        size_t n = *cap ? *cap * 2 : 8;
        iosmux_json **items = realloc(v->items, n * sizeof *items);
        if (items == NULL) return -1;
        v->items = items;
        if (v->type == IOSMUX_JSON_OBJECT) {
            char **keys = realloc(v->keys, n * sizeof *keys);
            if (keys == NULL) return -1;
            v->keys = keys;
        }
        *cap = n;
    }
    v->items[v->count] = item;
    if (v->type == IOSMUX_JSON_OBJECT) v->keys[v->count] = key;
    v->count++;
    return 0;
}

static iosmux_json *parse_container(parser *ps, int depth, int object) {
    iosmux_json *v = node(object ? IOSMUX_JSON_OBJECT : IOSMUX_JSON_ARRAY);
    size_t cap = 0;
    char close = object ? '}' : ']';
    if (v == NULL) { seterr(ps->err, ps->errlen, "json: out of memory"); return NULL; }
    ps->p++;
    ws(ps);
    if (ps->p < ps->end && *ps->p == close) { ps->p++; return v; }
    for (;;) {
        char *key = NULL;
        size_t klen;
        iosmux_json *item;
        ws(ps);
        if (object) {
            if ((key = parse_string(ps, &klen)) == NULL) goto fail;
            ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') { free(key); seterr(ps->err, ps->errlen, "json: ':' expected"); goto fail; }
            ps->p++;
        }
        if ((item = parse_value(ps, depth + 1)) == NULL) { free(key); goto fail; }
        if (push(v, item, key, &cap) != 0) {
            free(key);
            iosmux_json_free(item);
            seterr(ps->err, ps->errlen, "json: out of memory");
            goto fail;
        }
        ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == close) { ps->p++; return v; }
        seterr(ps->err, ps->errlen, "json: ',' or '%c' expected", close);
        goto fail;
    }
fail:
    iosmux_json_free(v);
    return NULL;
}

static int isdigit_(char c) { return c >= '0' && c <= '9'; }

static iosmux_json *parse_number(parser *ps) {
    const char *s = ps->p;
    iosmux_json *v;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p < ps->end && *ps->p == '0') ps->p++;
    else if (ps->p < ps->end && isdigit_(*ps->p)) while (ps->p < ps->end && isdigit_(*ps->p)) ps->p++;
    else { seterr(ps->err, ps->errlen, "json: bad number"); return NULL; }
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || !isdigit_(*ps->p)) { seterr(ps->err, ps->errlen, "json: bad number"); return NULL; }
        while (ps->p < ps->end && isdigit_(*ps->p)) ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || !isdigit_(*ps->p)) { seterr(ps->err, ps->errlen, "json: bad number"); return NULL; }
        while (ps->p < ps->end && isdigit_(*ps->p)) ps->p++;
    }
    if ((v = node(IOSMUX_JSON_NUMBER)) == NULL || (v->str = dupn(s, (size_t)(ps->p - s))) == NULL) {
        free(v);
        seterr(ps->err, ps->errlen, "json: out of memory");
        return NULL;
    }
    v->str_len = (size_t)(ps->p - s);
    return v;
}

static int literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return 0;
    ps->p += n;
    return 1;
}

static iosmux_json *parse_value(parser *ps, int depth) {
    iosmux_json *v;
    if (depth > IOSMUX_INJECT_MAX_DEPTH) { seterr(ps->err, ps->errlen, "json: nested deeper than %d", IOSMUX_INJECT_MAX_DEPTH); return NULL; }
    ws(ps);
    if (ps->p >= ps->end) { seterr(ps->err, ps->errlen, "json: unexpected end"); return NULL; }
    switch (*ps->p) {
    case '{': return parse_container(ps, depth, 1);
    case '[': return parse_container(ps, depth, 0);
    case '"':
        if ((v = node(IOSMUX_JSON_STRING)) == NULL) { seterr(ps->err, ps->errlen, "json: out of memory"); return NULL; }
        if ((v->str = parse_string(ps, &v->str_len)) == NULL) { free(v); return NULL; }
        return v;
    case 't': case 'f': case 'n':
        if (literal(ps, "true")) { v = node(IOSMUX_JSON_BOOL); if (v) v->boolean = 1; }
        else if (literal(ps, "false")) v = node(IOSMUX_JSON_BOOL);
        else if (literal(ps, "null")) v = node(IOSMUX_JSON_NULL);
        else { seterr(ps->err, ps->errlen, "json: bad literal"); return NULL; }
        if (v == NULL) seterr(ps->err, ps->errlen, "json: out of memory");
        return v;
    default:
        return parse_number(ps);
    }
}

iosmux_json *iosmux_json_parse(const char *text, size_t len, char *err, size_t errlen) {
    parser ps;
    iosmux_json *v;
    ps.p = text;
    ps.end = text + len;
    ps.err = err;
    ps.errlen = errlen;
    if (text == NULL) { seterr(err, errlen, "json: no input"); return NULL; }
    if ((v = parse_value(&ps, 0)) == NULL) return NULL;
    ws(&ps);
    if (ps.p != ps.end) {
        seterr(err, errlen, "json: trailing data at offset %lu", (unsigned long)(ps.p - text));
        iosmux_json_free(v);
        return NULL;
    }
    return v;
}

const iosmux_json *iosmux_json_get(const iosmux_json *v, const char *key) {
    size_t i;
    if (v == NULL || v->type != IOSMUX_JSON_OBJECT) return NULL;
    for (i = 0; i < v->count; i++)
        if (strcmp(v->keys[i], key) == 0) return v->items[i];
    return NULL;
}

const char *iosmux_json_string(const iosmux_json *v) {
    return v != NULL && v->type == IOSMUX_JSON_STRING ? v->str : NULL;
}

int iosmux_json_int64(const iosmux_json *v, int64_t *out) {
    char *end;
    long long n;
    if (v == NULL || v->type != IOSMUX_JSON_NUMBER || strpbrk(v->str, ".eE") != NULL) return -1;
    errno = 0;
    n = strtoll(v->str, &end, 10);
    if (errno != 0 || *end != '\0') return -1;
#if LLONG_MAX > INT64_MAX
    if (n < INT64_MIN || n > INT64_MAX) return -1;
#endif
    *out = (int64_t)n;
    return 0;
}

int iosmux_json_uint64(const iosmux_json *v, uint64_t *out) {
    char *end;
    unsigned long long n;
    if (v == NULL || v->type != IOSMUX_JSON_NUMBER || v->str[0] == '-' || strpbrk(v->str, ".eE") != NULL) return -1;
    errno = 0;
    n = strtoull(v->str, &end, 10);
    if (errno != 0 || *end != '\0') return -1;
#if ULLONG_MAX > UINT64_MAX
    if (n > UINT64_MAX) return -1;
#endif
    *out = (uint64_t)n;
    return 0;
}

const char *iosmux_xpc_type(const iosmux_json *typed) { return iosmux_json_string(iosmux_json_get(typed, "type")); }

const iosmux_json *iosmux_xpc_value(const iosmux_json *typed) { return iosmux_json_get(typed, "value"); }

const iosmux_json *iosmux_xpc_dict_get(const iosmux_json *typed_dict, const char *key) {
    const char *t = iosmux_xpc_type(typed_dict);
    if (t == NULL || strcmp(t, "dictionary") != 0) return NULL;
    return iosmux_json_get(iosmux_xpc_value(typed_dict), key);
}

const char *iosmux_xpc_string(const iosmux_json *typed) {
    const char *t = iosmux_xpc_type(typed);
    if (t == NULL || (strcmp(t, "string") != 0 && strcmp(t, "uuid") != 0)) return NULL;
    return iosmux_json_string(iosmux_xpc_value(typed));
}

/* ---- HTTP ---------------------------------------------------------------------------- */

void iosmux_response_free(iosmux_response *resp) {
    if (resp == NULL) return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

static int dial(const char *host, int port, int timeout_ms, char *err, size_t errlen) {
    struct addrinfo hints, *res, *ai;
    char service[16];
    int fd = -1, rc;
    struct timeval tv;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", port);
    if ((rc = getaddrinfo(host, service, &hints, &res)) != 0) {
        seterr(err, errlen, "resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        /* SO_SNDTIMEO also bounds connect on Linux; iosmuxd is on loopback, where connect does not wait. */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
#ifdef SO_NOSIGPIPE
        {
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
        }
#endif
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        seterr(err, errlen, "connect %s:%d: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

static int send_all(int fd, const char *b, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* dechunk decodes a chunked body in place; -1 if malformed. */
static int dechunk(char *b, size_t n, size_t *out) {
    size_t r = 0, w = 0;
    for (;;) {
        size_t size = 0, digits = 0;
        while (r < n) {
            char c = b[r];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) break;
            if (size > (SIZE_MAX >> 4)) return -1;
            size = size * 16 + (size_t)d;
            digits++;
            r++;
        }
        if (digits == 0) return -1;
        while (r < n && b[r] != '\n') r++; /* chunk extensions, CR */
        if (r >= n) return -1;
        r++;
        if (size == 0) break;
        if (size > n - r) return -1;
        memmove(b + w, b + r, size);
        w += size;
        r += size;
        if (r + 2 > n || b[r] != '\r' || b[r + 1] != '\n') return -1;
        r += 2;
    }
    *out = w;
    return 0;
}

/* header_value finds "Name:" in the header block (case-insensitive) and returns its value. */
static const char *header_value(const char *headers, const char *name, size_t *len) {
    size_t nl = strlen(name);
    const char *p = strstr(headers, "\r\n");
    while (p != NULL && p[2] != '\0' && !(p[2] == '\r' && p[3] == '\n')) {
        const char *line = p + 2, *eol = strstr(line, "\r\n");
        if (eol == NULL) return NULL;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t') v++;
            *len = (size_t)(eol - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

int iosmux_http_get(const char *host, int port, const char *path, int timeout_ms,
                    iosmux_response *resp, char *err, size_t errlen) {
    char req[2048], *buf = NULL, *hend, *body;
    size_t len = 0, cap = 0, hlen, blen, vlen;
    const char *v;
    int fd, n, major, minor, status;
    memset(resp, 0, sizeof *resp);
    n = snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nAccept: application/json\r\nConnection: close\r\n"
                 "User-Agent: iosmux-inject/1\r\n\r\n",
                 path, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
    if (n < 0 || (size_t)n >= sizeof req) { seterr(err, errlen, "http: request too long"); return -1; }
    if ((fd = dial(host, port, timeout_ms, err, errlen)) < 0) return -1;
    if (send_all(fd, req, (size_t)n) != 0) {
        seterr(err, errlen, "http: send: %s", strerror(errno));
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r;
        if (len + 1 >= cap) {
            char *nb;
            if (cap >= IOSMUX_INJECT_MAX_BODY + 65536) {
                seterr(err, errlen, "http: response larger than %u bytes", IOSMUX_INJECT_MAX_BODY);
                goto fail;
            }
            cap = cap ? cap * 2 : 16384;
            if ((nb = realloc(buf, cap)) == NULL) { seterr(err, errlen, "http: out of memory"); goto fail; }
            buf = nb;
        }
        r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            seterr(err, errlen, "http: %s", errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within the timeout" : strerror(errno));
            goto fail;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    fd = -1;
    buf[len] = '\0';
    if ((hend = strstr(buf, "\r\n\r\n")) == NULL) { seterr(err, errlen, "http: no end of headers"); goto fail; }
    hend[2] = '\0'; /* the header block ends with one CRLF now */
    if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 || status > 999) {
        seterr(err, errlen, "http: bad status line");
        goto fail;
    }
    body = hend + 4;
    hlen = (size_t)(body - buf);
    blen = len - hlen;
    if ((v = header_value(buf, "Transfer-Encoding", &vlen)) != NULL && vlen >= 7 && strncasecmp(v, "chunked", 7) == 0) {
        if (dechunk(body, blen, &blen) != 0) { seterr(err, errlen, "http: bad chunked body"); goto fail; }
    } else if ((v = header_value(buf, "Content-Length", &vlen)) != NULL) {
        char *end;
        unsigned long cl = strtoul(v, &end, 10);
        if (end == v || cl > blen) { seterr(err, errlen, "http: body shorter than Content-Length"); goto fail; }
        blen = (size_t)cl;
    }
    memmove(buf, body, blen);
    buf[blen] = '\0';
    resp->status = status;
    resp->body = buf;
    resp->body_len = blen;
    return 0;
fail:
    if (fd >= 0) close(fd);
    free(buf);
    return -1;
}

/* ---- contract ------------------------------------------------------------------------ */

void iosmux_device_free(iosmux_device *d) {
    if (d == NULL) return;
    free(d->udid);
    free(d->state);
    free(d->name);
    free(d->rsd_host);
    iosmux_json_free(d->doc);
    memset(d, 0, sizeof *d);
}

/* fetch_json GETs path and parses a 200 answer; other statuses are errors with the detail. */
static iosmux_json *fetch_json(const iosmux_client *c, const char *path, int timeout_ms, int *http_status,
                               char *err, size_t errlen) {
    iosmux_response resp;
    iosmux_json *doc;
    const iosmux_json *ver;
    int64_t version;
    if (http_status != NULL) *http_status = 0;
    if (iosmux_http_get(c->host, c->port, path, timeout_ms, &resp, err, errlen) != 0) return NULL;
    if (http_status != NULL) *http_status = resp.status;
    doc = iosmux_json_parse(resp.body, resp.body_len, err, errlen);
    if (resp.status != 200) {
        const char *detail = iosmux_json_string(iosmux_json_get(doc, "detail"));
        seterr(err, errlen, "GET %s: status %d: %s", path, resp.status, detail ? detail : "(no detail)");
        iosmux_json_free(doc);
        iosmux_response_free(&resp);
        return NULL;
    }
    iosmux_response_free(&resp);
    if (doc == NULL) return NULL;
    ver = iosmux_json_get(doc, "contractVersion");
    if (iosmux_json_int64(ver, &version) != 0 || version != IOSMUX_INJECT_CONTRACT_VERSION) {
        seterr(err, errlen, "GET %s: contractVersion is not %d", path, IOSMUX_INJECT_CONTRACT_VERSION);
        iosmux_json_free(doc);
        return NULL;
    }
    return doc;
}

iosmux_json *iosmux_devices_list(const iosmux_client *c, char *err, size_t errlen) {
    iosmux_json *doc = fetch_json(c, "/iosmux/inject/v1/devices", 10000, NULL, err, errlen);
    const iosmux_json *devs = iosmux_json_get(doc, "devices");
    if (doc != NULL && (devs == NULL || devs->type != IOSMUX_JSON_ARRAY)) {
        seterr(err, errlen, "device list: no devices array");
        iosmux_json_free(doc);
        return NULL;
    }
    return doc;
}

/* pathsafe reports whether a UDID can go into a path as it is (hex digits and dashes, ...). */
static int pathsafe(const char *s) {
    if (*s == '\0' || strlen(s) > 128) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

int iosmux_device_get(const iosmux_client *c, const char *udid, double wait_seconds,
                      uint64_t not_generation, iosmux_device *out, int *http_status,
                      char *err, size_t errlen) {
    char path[512];
    const iosmux_json *rsd, *v;
    int64_t port;
    memset(out, 0, sizeof *out);
    if (http_status != NULL) *http_status = 0;
    if (!pathsafe(udid)) { seterr(err, errlen, "udid %.40s is not a plain identifier", udid); return -1; }
    if (!(wait_seconds >= 0 && wait_seconds <= IOSMUX_INJECT_MAX_WAIT)) {
        seterr(err, errlen, "wait must be 0..%d seconds", IOSMUX_INJECT_MAX_WAIT);
        return -1;
    }
    if (not_generation != 0)
        snprintf(path, sizeof path, "/iosmux/inject/v1/devices/%s?wait=%.3f&generation=%llu", udid, wait_seconds,
                 (unsigned long long)not_generation);
    else
        snprintf(path, sizeof path, "/iosmux/inject/v1/devices/%s?wait=%.3f", udid, wait_seconds);
    /* The server answers within wait; allow 15 s more for the rest. */
    out->doc = fetch_json(c, path, (int)(wait_seconds * 1000) + 15000, http_status, err, errlen);
    if (out->doc == NULL) return -1;
    v = iosmux_json_get(out->doc, "udid");
    out->udid = iosmux_json_string(v) ? dupn(v->str, v->str_len) : NULL;
    v = iosmux_json_get(out->doc, "state");
    out->state = iosmux_json_string(v) ? dupn(v->str, v->str_len) : NULL;
    v = iosmux_json_get(out->doc, "name");
    if (iosmux_json_string(v)) out->name = dupn(v->str, v->str_len);
    v = iosmux_json_get(out->doc, "ready");
    if (out->udid == NULL || out->state == NULL || v == NULL || v->type != IOSMUX_JSON_BOOL ||
        iosmux_json_uint64(iosmux_json_get(out->doc, "generation"), &out->generation) != 0) {
        seterr(err, errlen, "device document: udid, state, ready or generation missing");
        iosmux_device_free(out);
        return -1;
    }
    out->ready = v->boolean;
    if (!out->ready) return 0;
    rsd = iosmux_json_get(out->doc, "rsd");
    v = iosmux_json_get(rsd, "host");
    out->handshake = iosmux_json_get(out->doc, "handshake");
    out->properties = iosmux_json_get(out->handshake, "properties");
    out->services = iosmux_json_get(out->handshake, "services");
    if (iosmux_json_string(v) == NULL || iosmux_json_int64(iosmux_json_get(rsd, "port"), &port) != 0 || port < 1 ||
        port > 65535 || out->properties == NULL || out->services == NULL ||
        strcmp(iosmux_xpc_type(out->properties) ? iosmux_xpc_type(out->properties) : "", "dictionary") != 0 ||
        strcmp(iosmux_xpc_type(out->services) ? iosmux_xpc_type(out->services) : "", "dictionary") != 0) {
        seterr(err, errlen, "ready device document: rsd or handshake malformed");
        iosmux_device_free(out);
        return -1;
    }
    out->rsd_host = dupn(v->str, v->str_len);
    out->rsd_port = (int)port;
    return 0;
}
