/*
 * iosmux_inject: a C99 client for iosmuxd's inject contract, version 1 (inject/CONTRACT.md).
 *
 * Plain POSIX sockets, HTTP/1.1 (Content-Length, chunked, or read-to-close bodies) and a small
 * JSON reader of its own. No global state; every call is bounded by a timeout and every input
 * by a size or depth limit. Thread-safe as long as each object is used by one thread.
 */
#ifndef IOSMUX_INJECT_H
#define IOSMUX_INJECT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOSMUX_INJECT_CONTRACT_VERSION 1
#define IOSMUX_INJECT_DEFAULT_PORT 49151
/* Largest response body read, and deepest JSON nesting accepted. */
#define IOSMUX_INJECT_MAX_BODY (8u << 20)
#define IOSMUX_INJECT_MAX_DEPTH 64
/* The contract's upper bound on ?wait=SECONDS. */
#define IOSMUX_INJECT_MAX_WAIT 60

/* ---- JSON ---------------------------------------------------------------------------- */

typedef enum {
    IOSMUX_JSON_NULL,
    IOSMUX_JSON_BOOL,
    IOSMUX_JSON_NUMBER,
    IOSMUX_JSON_STRING,
    IOSMUX_JSON_ARRAY,
    IOSMUX_JSON_OBJECT
} iosmux_json_type;

/* One JSON value. Objects keep their keys in document order. */
typedef struct iosmux_json {
    iosmux_json_type type;
    int boolean;                 /* BOOL */
    char *str;                   /* STRING: decoded UTF-8, NUL-terminated; NUMBER: the literal */
    size_t str_len;              /* STRING: length in bytes (the string may contain NUL) */
    size_t count;                /* ARRAY, OBJECT: number of items */
    char **keys;                 /* OBJECT: keys[i] names items[i] */
    struct iosmux_json **items;  /* ARRAY, OBJECT */
} iosmux_json;

/* Parses len bytes of JSON (one value, optional surrounding whitespace). NULL on error, with a
 * message in err (errlen bytes, may be 0). */
iosmux_json *iosmux_json_parse(const char *text, size_t len, char *err, size_t errlen);
void iosmux_json_free(iosmux_json *v);
/* The value of key in an object, or NULL (also when v is not an object). */
const iosmux_json *iosmux_json_get(const iosmux_json *v, const char *key);
/* The string of a STRING value, or NULL. */
const char *iosmux_json_string(const iosmux_json *v);
/* Exact integer conversions of a NUMBER value: 0 on success, -1 if not an integer in range. */
int iosmux_json_int64(const iosmux_json *v, int64_t *out);
int iosmux_json_uint64(const iosmux_json *v, uint64_t *out);

/* ---- typed XPC values (CONTRACT.md section 3) ----------------------------------------- */

/* The "type" of a typed XPC value ("string", "uint64", "dictionary", ...), or NULL. */
const char *iosmux_xpc_type(const iosmux_json *typed);
/* The "value" member of a typed XPC value, or NULL. */
const iosmux_json *iosmux_xpc_value(const iosmux_json *typed);
/* In a typed dictionary, the typed value of key, or NULL. */
const iosmux_json *iosmux_xpc_dict_get(const iosmux_json *typed_dict, const char *key);
/* The string of a typed "string" (or "uuid") value, or NULL. */
const char *iosmux_xpc_string(const iosmux_json *typed);

/* ---- HTTP ---------------------------------------------------------------------------- */

/* A response: status code and body (NUL-terminated, body_len bytes before the NUL). */
typedef struct {
    int status;
    char *body;
    size_t body_len;
} iosmux_response;

/* GET path from host:port (numeric IPv4/IPv6 or a name), waiting at most timeout_ms for each
 * read and write. 0 on success (any status), -1 on a transport error (message in err). */
int iosmux_http_get(const char *host, int port, const char *path, int timeout_ms,
                    iosmux_response *resp, char *err, size_t errlen);
void iosmux_response_free(iosmux_response *resp);

/* ---- the contract's device document ------------------------------------------------------ */

typedef struct {
    char *udid;
    uint64_t generation;
    int ready;
    char *state;
    char *name;                    /* NULL when the document says null */
    char *rsd_host;                /* NULL unless ready */
    int rsd_port;                  /* 0 unless ready */
    const iosmux_json *handshake;  /* NULL unless ready; points into doc */
    const iosmux_json *properties; /* typed dictionary, device's values as received */
    const iosmux_json *services;   /* typed dictionary, ports as the rsd endpoint serves them */
    iosmux_json *doc;              /* the whole document */
} iosmux_device;

/* Where iosmuxd's API is. */
typedef struct {
    const char *host; /* "127.0.0.1" */
    int port;         /* IOSMUX_INJECT_DEFAULT_PORT */
} iosmux_client;

/* GET /iosmux/inject/v1/devices/{udid}?wait=WAIT[&generation=GEN]: waits up to wait_seconds
 * (0..IOSMUX_INJECT_MAX_WAIT) for the device to be ready with a generation other than
 * not_generation (0: any). 0 on success (out filled; free with iosmux_device_free), -1 on error
 * (message in err; http_status, if not NULL, holds the HTTP status or 0). */
int iosmux_device_get(const iosmux_client *c, const char *udid, double wait_seconds,
                      uint64_t not_generation, iosmux_device *out, int *http_status,
                      char *err, size_t errlen);
void iosmux_device_free(iosmux_device *d);

/* GET /iosmux/inject/v1/devices: the parsed list document (free with iosmux_json_free), after
 * checking contractVersion. NULL on error. */
iosmux_json *iosmux_devices_list(const iosmux_client *c, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
