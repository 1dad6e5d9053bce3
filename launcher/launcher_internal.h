/* Internals of the launcher shared between its files: a small, strict YAML
 * tree built from libfyaml's event stream, and message helpers. */
#ifndef RINGTRAIN_LAUNCHER_INTERNAL_H
#define RINGTRAIN_LAUNCHER_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

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

/* Builds the tree of exactly one document. Rejects anchors, aliases, tags,
 * several documents, non-scalar keys and anything over the limits above;
 * source names the input in messages. */
int launch__yaml_load(const char *text, size_t bytes, const char *source,
                      launch__yaml_node_t **root, launch_error_t *err);
void launch__yaml_free(launch__yaml_node_t *node);

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
