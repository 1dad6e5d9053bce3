/* Internals of the launcher shared between its files: a small, strict YAML
 * tree built from libfyaml's event stream, and message helpers. */
#ifndef RINGTRAIN_LAUNCHER_INTERNAL_H
#define RINGTRAIN_LAUNCHER_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "launcher.h"

typedef enum {
    LAUNCH__YAML_SCALAR = 0,
    LAUNCH__YAML_MAP,
    LAUNCH__YAML_SEQ,
} launch__yaml_kind_t;

/* One node. A map keeps its entries as key, value, key, value… in kids. */
typedef struct launch__yaml_node {
    launch__yaml_kind_t kind;
    int plain;                 /* scalar written without quotes or block style */
    char *text;                /* scalar text, NUL-terminated copy */
    size_t bytes;              /* scalar length (may contain NUL bytes) */
    struct launch__yaml_node **kids;
    size_t count;
    size_t capacity;
    int line, column;          /* 1-based position in the input */
} launch__yaml_node_t;

/* Limits that keep a hostile document cheap to reject. */
#define LAUNCH__YAML_MAX_DEPTH 64
#define LAUNCH__YAML_MAX_NODES 200000

/* Builds the tree of the file's document of kind ("MPIJob", "TFJob"): the
 * only document, or the only one of that kind among several (other objects
 * may come with the job); several of that kind, or none among several, are
 * refused naming them. Rejects anchors, aliases, tags, non-scalar keys and
 * anything over the limits above in any document; source names the input
 * in messages. */
int launch__yaml_load(const char *text, size_t bytes, const char *source, const char *kind,
                      launch__yaml_node_t **root, launch_error_t *err);
void launch__yaml_free(launch__yaml_node_t *node);

/* What a job parser passes to the typed accessors below (fields.c). */
typedef struct {
    const char *source;       /* the input, in messages: a path, or "MPIJob" */
    const char *kind_article; /* "an MPIJob", "a TFJob" */
    const char *examples;     /* where to look, e.g. "see the mpi-operator examples" */
    launch_error_t *err;
} launch__ctx_t;

/* What a scalar is after YAML->JSON (YAML 1.2 core schema, plus YAML 1.1's
 * yes/no/on/off booleans that Kubernetes' decoder still honours). */
typedef enum {
    LAUNCH__SC_NULL,
    LAUNCH__SC_BOOL,
    LAUNCH__SC_INT,
    LAUNCH__SC_FLOAT,
    LAUNCH__SC_STRING,
} launch__scalar_class_t;

bool launch__all_digits(const char *s, size_t bytes);
bool launch__text_in(const char *s, const char *const *words);
launch__scalar_class_t launch__scalar_class(const launch__yaml_node_t *node);
/* "a mapping", "a list", "null", "a boolean", "an integer", "a string"... */
const char *launch__kind_text(const launch__yaml_node_t *node);
bool launch__is_null(const launch__yaml_node_t *node);
/* Looks key up in map (exact match); a key present twice is an error, as in
 * Kubernetes' strict decoding. *out is NULL when absent or null. */
int launch__map_get(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                    const char *field, const launch__yaml_node_t **out);
int launch__want_map(launch__ctx_t *c, const launch__yaml_node_t *node, const char *field);
int launch__get_map(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                    const char *field, bool required, const launch__yaml_node_t **out);
/* A string: quoted, or plain and not a number, boolean or null; no NUL. */
int launch__get_string(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                       const char *field, bool required, const launch__yaml_node_t **out);
/* A decimal integer in [min, max]; *have says whether it was present. */
int launch__get_int(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                    const char *field, int64_t min, int64_t max, bool *have, int64_t *value);
int launch__get_bool(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                     const char *field, bool *value);
/* An optional string that must be one of values (NULL-terminated); copied
 * into out when present, out untouched when absent. */
int launch__get_enum(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                     const char *field, const char *const *values, char *out, size_t out_bytes);
/* The root's kind must be kind ("MPIJob", "TFJob"). Checked before the
 * apiVersion, so another kind of manifest (a Katib Experiment, a
 * Deployment) is named for what it is, not as an unsupported version. */
int launch__check_kind(launch__ctx_t *c, const launch__yaml_node_t *root, const char *kind);
/* node (a string) must be a DNS-1035 (dns1035) or DNS-1123 label. */
int launch__check_label(launch__ctx_t *c, const launch__yaml_node_t *node, const char *field,
                        bool dns1035);

/* Reads path into a malloc'd, NUL-terminated buffer. The input must be a
 * regular file (opened with rt_open_regular: a FIFO, directory or device is
 * refused at once, never blocked on) of at most limit bytes; what names the
 * expected content in messages ("the MPIJob YAML"). */
int launch__file_read(const char *path, const char *what, size_t limit, char **text,
                      size_t *bytes, launch_error_t *err);

/* host is this machine: "localhost", 127.x, ::1, this hostname or
 * "<hostname>.<anything>" (a pod's FQDN starts with its hostname). */
bool launch__host_is_local(const char *host);

/* launch_job_parse with the input named source in messages. */
int launch__job_parse_named(const char *yaml, size_t bytes, const char *source,
                            const launch_legacy_opts_t *legacy, launch_job_t *job,
                            launch_error_t *err);

/* Printf into err->text. */
void launch__error_set(launch_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Writes text as a double-quoted, escaped, length-limited string into out,
 * so hostile input (newlines, control bytes) cannot forge output lines. */
void launch__quote(const char *text, size_t bytes, char *out, size_t out_bytes);

#endif
