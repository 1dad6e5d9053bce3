/* A strict YAML reader for job manifests (MPIJob, TFJob): libfyaml's event
 * parser feeds a small tree of maps, sequences and scalars. Anchors, aliases
 * and tags are refused outright, in every document (no alias bomb can
 * expand), as are complex keys, nesting deeper than 64, more than 200000
 * nodes in all and text that is not UTF-8. A file may hold other objects
 * beside the job (a claim, a ComputeDomain: what `kubectl apply -f` takes):
 * the only document of the wanted kind is taken, and several of them are
 * refused, named. Scalars keep whether they were quoted, so `replicas: "2"`
 * can be told from `replicas: 2`. */
#include "launcher_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libfyaml.h>

#include "common/common.h"

void launch__error_set(launch_error_t *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
}

void launch__quote(const char *text, size_t bytes, char *out, size_t out_bytes)
{
    const size_t shown_max = 80;
    size_t o = 0;
    if (out_bytes < 8) {
        if (out_bytes > 0)
            out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (size_t i = 0; i < bytes; i++) {
        if (i == shown_max || o + 8 >= out_bytes) {
            o += (size_t)snprintf(out + o, out_bytes - o, "...");
            break;
        }
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c == '\t') {
            out[o++] = '\\';
            out[o++] = 't';
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(out + o, out_bytes - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (o + 2 <= out_bytes) {
        out[o++] = '"';
        out[o] = '\0';
    } else {
        out[out_bytes - 1] = '\0';
    }
}

void launch__yaml_free(launch__yaml_node_t *node)
{
    if (node == NULL)
        return;
    for (size_t i = 0; i < node->count; i++)
        launch__yaml_free(node->kids[i]);
    free(node->kids);
    free(node->text);
    free(node);
}

static int node_append(launch__yaml_node_t *parent, launch__yaml_node_t *kid)
{
    if (parent->count == parent->capacity) {
        size_t capacity = parent->capacity ? parent->capacity * 2 : 8;
        launch__yaml_node_t **kids = realloc(parent->kids, capacity * sizeof *kids);
        if (kids == NULL)
            return RT_ENOMEM;
        parent->kids = kids;
        parent->capacity = capacity;
    }
    parent->kids[parent->count++] = kid;
    return 0;
}

/* Which token of an event carries its anchor and tag. */
static void event_decor(struct fy_event *ev, struct fy_token **anchor, struct fy_token **tag)
{
    *anchor = NULL;
    *tag = NULL;
    switch (ev->type) {
    case FYET_SCALAR:
        *anchor = ev->scalar.anchor;
        *tag = ev->scalar.tag;
        break;
    case FYET_MAPPING_START:
        *anchor = ev->mapping_start.anchor;
        *tag = ev->mapping_start.tag;
        break;
    case FYET_SEQUENCE_START:
        *anchor = ev->sequence_start.anchor;
        *tag = ev->sequence_start.tag;
        break;
    default:
        break;
    }
}

/* The first error libfyaml collected, as "line:column: message". */
static void diag_first_error(struct fy_diag *diag, const char *source, launch_error_t *err)
{
    void *iter = NULL;
    struct fy_diag_error *de = diag ? fy_diag_errors_iterate(diag, &iter) : NULL;
    if (de != NULL && de->msg != NULL) {
        char msg[200];
        launch__quote(de->msg, strlen(de->msg), msg, sizeof msg);
        launch__error_set(err, "%s:%d:%d: YAML syntax error %s; fix the YAML (e.g. check it with "
                          "`python3 -c 'import yaml,sys; yaml.safe_load(open(sys.argv[1]))' FILE`)",
                          source, de->line + 1, de->column + 1, msg);
    } else {
        launch__error_set(err, "%s: YAML syntax error; fix the YAML", source);
    }
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0: overlong forms,
 * surrogates and code points past U+10FFFF are invalid (RFC 3629). */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || len > left)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

/* Copies a scalar's text into node. libfyaml 0.7.12 (Debian 12) misreads a
 * single-quoted scalar with two escaped quotes in a row ('x''''y' reads as
 * "x'''" instead of "x''y") and can leak while doing so (found by
 * tests/fuzz): such a scalar is refused rather than read wrong. */
static int scalar_copy(struct fy_token *token, const char *input, size_t input_bytes,
                       const char *source, int line, int column, launch__yaml_node_t *node,
                       launch_error_t *err)
{
    enum fy_scalar_style style = fy_token_scalar_style(token);
    if (style == FYSS_SINGLE_QUOTED) {
        /* The marks span the text between the quotes, as written. */
        const struct fy_mark *start = fy_token_start_mark(token);
        const struct fy_mark *end = fy_token_end_mark(token);
        if (start == NULL || end == NULL || start->input_pos > end->input_pos ||
            end->input_pos > input_bytes) {
            launch__error_set(err, "%s:%d:%d: cannot locate a single-quoted string in the "
                              "input; write it in double quotes", source, line, column);
            return RT_EFORMAT;
        }
        if (memmem(input + start->input_pos, end->input_pos - start->input_pos, "''''", 4)) {
            launch__error_set(err, "%s:%d:%d: a single-quoted string with two escaped quotes "
                              "in a row ('''') is misread by this libfyaml (0.7); write the "
                              "value in double quotes", source, line, column);
            return RT_EFORMAT;
        }
    }
    size_t len = 0;
    const char *value = fy_token_get_text(token, &len);
    if (value == NULL && len > 0) {
        launch__error_set(err, "%s:%d:%d: libfyaml could not give the text of a value; "
                          "simplify it", source, line, column);
        return RT_EFORMAT;
    }
    node->plain = style == FYSS_PLAIN;
    node->text = malloc(len + 1);
    if (node->text == NULL)
        return RT_ENOMEM;
    if (len)
        memcpy(node->text, value, len);
    node->text[len] = '\0';
    node->bytes = len;
    return 0;
}

/* YAML is Unicode, and Kubernetes reads manifests as UTF-8. Checked before
 * libfyaml sees the text: libfyaml 0.7.12 (Debian 12) loops forever on a
 * directive with invalid UTF-8, e.g. "%\xcf" (found by tests/fuzz). */
static int utf8_check(const char *text, size_t bytes, const char *source, const char *kind,
                      launch_error_t *err)
{
    int line = 1, column = 1;
    for (size_t i = 0; i < bytes;) {
        size_t len = utf8_sequence((const unsigned char *)text + i, bytes - i);
        if (len == 0) {
            launch__error_set(err, "%s:%d:%d: byte 0x%02x is not UTF-8 text; save the %s "
                              "manifest as UTF-8", source, line, column,
                              (unsigned char)text[i], kind);
            return RT_EFORMAT;
        }
        column = text[i] == '\n' ? 1 : column + 1;
        line += text[i] == '\n';
        i += len;
    }
    return 0;
}

/* The tree being built from the event stream: one root per document. */
typedef struct {
    const char *text;
    size_t bytes;
    const char *source;
    const char *kind;
    launch_error_t *err;
    launch__yaml_node_t *stack[LAUNCH__YAML_MAX_DEPTH + 1];
    size_t depth;
    size_t nodes;
    launch__yaml_node_t docs; /* a sequence of each document's root, in file order */
} builder_t;

static void builder_free(builder_t *b)
{
    for (size_t i = 0; i < b->docs.count; i++)
        launch__yaml_free(b->docs.kids[i]);
    free(b->docs.kids);
    memset(&b->docs, 0, sizeof b->docs);
}

/* Hangs node under the open collection, or makes it a document's root. */
static int builder_attach(builder_t *b, launch__yaml_node_t *node, int line, int column)
{
    if (b->depth == 0)
        return node_append(&b->docs, node);
    launch__yaml_node_t *parent = b->stack[b->depth - 1];
    if (parent->kind == LAUNCH__YAML_MAP && parent->count % 2 == 0 &&
        node->kind != LAUNCH__YAML_SCALAR) {
        launch__error_set(b->err, "%s:%d:%d: a mapping key is not a plain value; use simple "
                          "keys", b->source, line, column);
        return RT_EFORMAT;
    }
    return node_append(parent, node);
}

/* A scalar, mapping or sequence starts: a new node, attached, and opened
 * when it is a collection. */
static int builder_node(builder_t *b, struct fy_event *ev, int line, int column)
{
    if (++b->nodes > LAUNCH__YAML_MAX_NODES) {
        launch__error_set(b->err, "%s:%d:%d: more than %d YAML nodes; a %s manifest is far "
                          "smaller, give the right file", b->source, line, column,
                          LAUNCH__YAML_MAX_NODES, b->kind);
        return RT_ERANGE;
    }
    launch__yaml_kind_t kind = ev->type == FYET_SCALAR        ? LAUNCH__YAML_SCALAR
                               : ev->type == FYET_MAPPING_START ? LAUNCH__YAML_MAP
                                                                : LAUNCH__YAML_SEQ;
    launch__yaml_node_t *node = calloc(1, sizeof *node);
    if (node == NULL)
        return RT_ENOMEM;
    *node = (launch__yaml_node_t){.kind = kind, .line = line, .column = column};
    int rc = 0;
    if (kind == LAUNCH__YAML_SCALAR)
        rc = scalar_copy(ev->scalar.value, b->text, b->bytes, b->source, line, column, node,
                         b->err);
    if (rc == 0)
        rc = builder_attach(b, node, line, column);
    if (rc != 0) {
        launch__yaml_free(node);
        return rc;
    }
    if (node->kind == LAUNCH__YAML_SCALAR)
        return 0;
    if (b->depth == LAUNCH__YAML_MAX_DEPTH) {
        launch__error_set(b->err, "%s:%d:%d: nested deeper than %d levels; a %s manifest never "
                          "is, give the right file", b->source, line, column,
                          LAUNCH__YAML_MAX_DEPTH, b->kind);
        return RT_ERANGE;
    }
    b->stack[b->depth++] = node;
    return 0;
}

/* One event of the stream. Anchors, aliases and tags are refused wherever
 * they are, in every document. */
static int builder_event(builder_t *b, struct fy_event *ev)
{
    const struct fy_mark *mark = fy_event_start_mark(ev);
    int line = mark ? mark->line + 1 : 0;
    int column = mark ? mark->column + 1 : 0;
    struct fy_token *anchor, *tag;
    event_decor(ev, &anchor, &tag);
    if (ev->type == FYET_ALIAS) {
        launch__error_set(b->err, "%s:%d:%d: YAML alias (*name) found; aliases are not accepted "
                          "(they can expand without bound); write the values out", b->source,
                          line, column);
        return RT_EFORMAT;
    }
    if (anchor != NULL) {
        launch__error_set(b->err, "%s:%d:%d: YAML anchor (&name) found; anchors and aliases are "
                          "not accepted; write the values out", b->source, line, column);
        return RT_EFORMAT;
    }
    if (tag != NULL) {
        launch__error_set(b->err, "%s:%d:%d: YAML tag (!...) found; tags are not accepted in a "
                          "%s manifest; remove it", b->source, line, column, b->kind);
        return RT_EFORMAT;
    }
    if (ev->type == FYET_SCALAR || ev->type == FYET_MAPPING_START ||
        ev->type == FYET_SEQUENCE_START)
        return builder_node(b, ev, line, column);
    if ((ev->type == FYET_MAPPING_END || ev->type == FYET_SEQUENCE_END) && b->depth > 0)
        b->depth--;
    return 0;
}

/* The text of a document root's top-level string key, or NULL. */
static const launch__yaml_node_t *top_string(const launch__yaml_node_t *doc, const char *key)
{
    if (doc->kind != LAUNCH__YAML_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < doc->count; i += 2) {
        const launch__yaml_node_t *k = doc->kids[i], *v = doc->kids[i + 1];
        if (k->bytes == strlen(key) && memcmp(k->text, key, k->bytes) == 0)
            return v->kind == LAUNCH__YAML_SCALAR ? v : NULL;
    }
    return NULL;
}

static bool is_kind(const launch__yaml_node_t *doc, const char *kind)
{
    const launch__yaml_node_t *k = top_string(doc, "kind");
    return k != NULL && k->bytes == strlen(kind) && memcmp(k->text, kind, k->bytes) == 0;
}

/* What names a document in a message: its metadata.name (names) or its
 * kind, quoted, and its line. */
static void describe(char *out, size_t bytes, const launch__yaml_node_t *doc, bool names)
{
    const launch__yaml_node_t *label = NULL;
    if (names) {
        for (size_t k = 0; doc->kind == LAUNCH__YAML_MAP && k + 1 < doc->count; k += 2)
            if (doc->kids[k]->bytes == 8 && memcmp(doc->kids[k]->text, "metadata", 8) == 0)
                label = top_string(doc->kids[k + 1], "name");
    } else {
        label = top_string(doc, "kind");
    }
    char quoted[120];
    if (label != NULL)
        launch__quote(label->text, label->bytes, quoted, sizeof quoted);
    snprintf(out, bytes, "%s (line %d)", label ? quoted : names ? "no name" : "no kind",
             doc->line);
}

/* The documents of kind (all when kind is NULL) as "a (line 1), b (line 5)
 * and c (line 9)": at most 5, then "and N more". */
static void list_documents(char *out, size_t bytes, launch__yaml_node_t *const *docs,
                           size_t count, const char *kind)
{
    size_t listed = 0, total = 0, used = 0;
    for (size_t i = 0; i < count; i++)
        total += !launch__is_null(docs[i]) && (kind == NULL || is_kind(docs[i], kind));
    out[0] = '\0';
    for (size_t i = 0; i < count && listed < 5 && used < bytes; i++) {
        if (launch__is_null(docs[i]) || (kind != NULL && !is_kind(docs[i], kind)))
            continue;
        char one[160];
        describe(one, sizeof one, docs[i], kind != NULL);
        const char *sep = listed == 0 ? "" : listed + 1 == total ? " and " : ", ";
        used += (size_t)snprintf(out + used, bytes - used, "%s%s", sep, one);
        listed++;
    }
    if (total > listed && used < bytes)
        snprintf(out + used, bytes - used, " and %zu more", total - listed);
}

static size_t count_kind(const builder_t *b, const char *kind)
{
    size_t found = 0;
    for (size_t i = 0; i < b->docs.count; i++)
        found += !launch__is_null(b->docs.kids[i]) && is_kind(b->docs.kids[i], kind);
    return found;
}

/* The error for a file of several documents without exactly one of the
 * caller's kind: name the jobs, or the kinds that are there. */
static int several_documents(const builder_t *b, size_t found, size_t nonempty)
{
    char list[700];
    list_documents(list, sizeof list, b->docs.kids, b->docs.count, found ? b->kind : NULL);
    if (found > 1) {
        launch__error_set(b->err, "%s: %zu %ss in one file: %s; give a file with one %s (the "
                          "launcher runs one job)", b->source, found, b->kind, list, b->kind);
        return RT_EFORMAT;
    }
    const char *hint = "give the file that holds it";
    if (strcmp(b->kind, "MPIJob") != 0 && count_kind(b, "MPIJob") > 0)
        hint = "for an MPIJob use --mpijob";
    else if (strcmp(b->kind, "TFJob") != 0 && count_kind(b, "TFJob") > 0)
        hint = "for a TFJob use --tfjob";
    launch__error_set(b->err, "%s: none of the %zu documents is %s %s (kinds: %s); %s",
                      b->source, nonempty, strcmp(b->kind, "MPIJob") == 0 ? "an" : "a", b->kind,
                      list, hint);
    return RT_EFORMAT;
}

/* The document the caller wants: the only one, or among several (a claim
 * or a ComputeDomain may come with the job) the only one of its kind. A
 * lone document of another kind is returned for its parser to name. */
static int pick_document(builder_t *b, launch__yaml_node_t **root)
{
    size_t found = count_kind(b, b->kind), nonempty = 0, index = 0, last = 0;
    for (size_t i = 0; i < b->docs.count; i++) {
        if (launch__is_null(b->docs.kids[i]))
            continue;
        nonempty++;
        last = i;
        if (is_kind(b->docs.kids[i], b->kind))
            index = i;
    }
    if (b->docs.count == 1 || nonempty == 0)
        index = 0;
    else if (found == 0 && nonempty == 1)
        index = last;
    else if (found != 1)
        return several_documents(b, found, nonempty);
    *root = b->docs.kids[index];
    b->docs.kids[index] = NULL;
    return 0;
}

int launch__yaml_load(const char *text, size_t bytes, const char *source, const char *kind,
                      launch__yaml_node_t **root_out, launch_error_t *err)
{
    *root_out = NULL;
    if (bytes > LAUNCH_YAML_MAX_BYTES) {
        launch__error_set(err, "%s: file is %zu bytes, over the 1 MiB limit for a %s manifest; "
                          "remove what is not needed (status, managedFields)", source, bytes,
                          kind);
        return RT_ERANGE;
    }
    if (memchr(text, '\0', bytes) != NULL) {
        launch__error_set(err, "%s: contains a NUL byte, so it is not YAML text; give the "
                          "%s manifest file", source, kind);
        return RT_EFORMAT;
    }

    int rc = utf8_check(text, bytes, source, kind, err);
    if (rc != 0)
        return rc;

    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = NULL;
    dcfg.level = FYET_ERROR;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (diag == NULL) {
        launch__error_set(err, "%s: out of memory creating the YAML parser; retry", source);
        return RT_ENOMEM;
    }
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg cfg = {
        .search_path = NULL,
        .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE,
        .userdata = NULL,
        .diag = diag,
    };
    struct fy_parser *parser = fy_parser_create(&cfg);
    if (parser == NULL) {
        fy_diag_destroy(diag);
        launch__error_set(err, "%s: out of memory creating the YAML parser; retry", source);
        return RT_ENOMEM;
    }
    builder_t b = {.text = text, .bytes = bytes, .source = source, .kind = kind, .err = err};
    if (fy_parser_set_string(parser, text, bytes) != 0) {
        launch__error_set(err, "%s: cannot hand the text to the YAML parser; retry", source);
        rc = RT_ENOMEM;
    }
    struct fy_event *ev;
    while (rc == 0 && (ev = fy_parser_parse(parser)) != NULL) {
        rc = builder_event(&b, ev);
        fy_parser_event_free(parser, ev);
    }
    if (rc == 0 && fy_parser_get_stream_error(parser)) {
        diag_first_error(diag, source, err);
        rc = RT_EFORMAT;
    }
    if (rc == RT_ENOMEM)
        launch__error_set(err, "%s: out of memory while reading the YAML; retry", source);
    if (rc == 0 && b.docs.count == 0) {
        launch__error_set(err, "%s: no YAML document (the file is empty); give the %s "
                          "manifest", source, kind);
        rc = RT_EFORMAT;
    }
    if (rc == 0)
        rc = pick_document(&b, root_out);
    builder_free(&b);
    fy_parser_destroy(parser);
    fy_diag_destroy(diag);
    return rc;
}

int launch__file_read(const char *path, const char *what, size_t limit, char **text_out,
                      size_t *bytes_out, launch_error_t *err)
{
    *text_out = NULL;
    *bytes_out = 0;
    int fd = -1;
    char why[sizeof err->text];
    int rc = rt_open_regular(path, &fd, why, sizeof why);
    if (rc == RT_EFORMAT) {
        launch__error_set(err, "%s", why);
        return rc;
    }
    if (rc != 0) {
        launch__error_set(err, "%s; give the path of %s", why, what);
        return rc;
    }
    /* Read one byte past the limit to tell "at the limit" from "over it";
     * one more holds the NUL. */
    size_t cap = limit + 1;
    char *text = malloc(cap + 1);
    if (text == NULL) {
        close(fd);
        launch__error_set(err, "%s: out of memory; retry", path);
        return RT_ENOMEM;
    }
    size_t bytes = 0;
    while (bytes < cap) {
        ssize_t got = read(fd, text + bytes, cap - bytes);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(text);
            close(fd);
            launch__error_set(err, "%s: read failed: %s; check the file", path, strerror(e));
            return RT_EIO;
        }
        if (got == 0)
            break;
        bytes += (size_t)got;
    }
    close(fd);
    if (bytes > limit) {
        free(text);
        launch__error_set(err, "%s: file is over the %zu MiB limit for %s; give %s alone", path,
                          limit >> 20, what, what);
        return RT_ERANGE;
    }
    text[bytes] = '\0';
    *text_out = text;
    *bytes_out = bytes;
    return 0;
}
