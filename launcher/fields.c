/* Typed access to the strict YAML tree (yaml.c) for the job parsers
 * (mpijob.c, tfjob.c): every value is checked for its type as Kubernetes
 * sees it after YAML->JSON (a quoted "2" is a string, not a number), for its
 * range, and for duplicate keys; each error names the field and the fix. */
#include "launcher.h"
#include "launcher_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

bool launch__all_digits(const char *s, size_t bytes)
{
    if (bytes == 0)
        return false;
    for (size_t i = 0; i < bytes; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool launch__text_in(const char *s, const char *const *words)
{
    for (size_t i = 0; words[i] != NULL; i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    return false;
}

/* What a plain scalar is in YAML 1.2's core schema, plus YAML 1.1's yes/no/on/off,
 * which Kubernetes' YAML decoder still treats as booleans. */
launch__scalar_class_t launch__scalar_class(const launch__yaml_node_t *node)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE",
                                        "yes", "Yes", "YES", "no", "No", "NO",
                                        "on", "On", "ON", "off", "Off", "OFF", NULL};
    if (!node->plain)
        return LAUNCH__SC_STRING;
    const char *s = node->text;
    size_t bytes = node->bytes;
    if (launch__text_in(s, nulls))
        return LAUNCH__SC_NULL;
    if (launch__text_in(s, bools))
        return LAUNCH__SC_BOOL;
    size_t sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (launch__all_digits(s + sign, bytes - sign))
        return LAUNCH__SC_INT;
    if (bytes > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o'))
        return LAUNCH__SC_INT;
    /* Anything strtod takes whole (1.5, 1e3, .inf, .nan) is a float. */
    bool has_digit = false;
    for (size_t i = 0; i < bytes; i++)
        if (s[i] >= '0' && s[i] <= '9')
            has_digit = true;
    static const char *const specials[] = {".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF",
                                           "+.inf", "+.Inf", "+.INF", ".nan", ".NaN", ".NAN",
                                           NULL};
    if (launch__text_in(s, specials))
        return LAUNCH__SC_FLOAT;
    if (has_digit) {
        char *end = NULL;
        errno = 0;
        (void)strtod(s, &end);
        if (end == s + bytes)
            return LAUNCH__SC_FLOAT;
    }
    return LAUNCH__SC_STRING;
}

const char *launch__kind_text(const launch__yaml_node_t *node)
{
    if (node->kind == LAUNCH__YAML_MAP)
        return "a mapping";
    if (node->kind == LAUNCH__YAML_SEQ)
        return "a list";
    switch (launch__scalar_class(node)) {
    case LAUNCH__SC_NULL:
        return "null";
    case LAUNCH__SC_BOOL:
        return "a boolean";
    case LAUNCH__SC_INT:
        return "an integer";
    case LAUNCH__SC_FLOAT:
        return "a number with a fraction";
    case LAUNCH__SC_STRING:
        return "a string";
    }
    return "?";
}

bool launch__is_null(const launch__yaml_node_t *node)
{
    return node == NULL ||
           (node->kind == LAUNCH__YAML_SCALAR && launch__scalar_class(node) == LAUNCH__SC_NULL);
}

/* Looks key up in map; a key present twice is an error, as in Kubernetes'
 * strict decoding. Returns 0 and *out (NULL when absent). */
int launch__map_get(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                    const char *field, const launch__yaml_node_t **out)
{
    *out = NULL;
    const launch__yaml_node_t *found = NULL;
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        const launch__yaml_node_t *k = map->kids[i];
        if (k->kind == LAUNCH__YAML_SCALAR && k->bytes == strlen(key) &&
            memcmp(k->text, key, k->bytes) == 0) {
            if (found != NULL) {
                launch__error_set(c->err, "%s: key appears twice (lines %d and %d); keep one",
                                  field, found->line, k->line);
                return RT_EFORMAT;
            }
            found = map->kids[i + 1];
        }
    }
    *out = launch__is_null(found) ? NULL : found;
    return 0;
}

int launch__want_map(launch__ctx_t *c, const launch__yaml_node_t *node, const char *field)
{
    if (node->kind == LAUNCH__YAML_MAP)
        return 0;
    launch__error_set(c->err, "%s: expected a mapping, got %s (line %d); write it as `key: value` "
                      "lines indented under %s", field, launch__kind_text(node), node->line, field);
    return RT_EFORMAT;
}

int launch__get_map(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                    const char *field, bool required, const launch__yaml_node_t **out)
{
    int rc = launch__map_get(c, map, key, field, out);
    if (rc != 0)
        return rc;
    if (*out == NULL) {
        if (!required)
            return 0;
        launch__error_set(c->err, "%s: missing; %s needs it (%s)", field, c->kind_article,
                          c->examples);
        return RT_EFORMAT;
    }
    return launch__want_map(c, *out, field);
}

/* A string field: quoted, or plain and not a number, boolean or null. */
int launch__get_string(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                       const char *field, bool required, const launch__yaml_node_t **out)
{
    int rc = launch__map_get(c, map, key, field, out);
    if (rc != 0)
        return rc;
    const launch__yaml_node_t *node = *out;
    if (node == NULL) {
        if (!required)
            return 0;
        launch__error_set(c->err, "%s: missing; set it", field);
        return RT_EFORMAT;
    }
    if (node->kind != LAUNCH__YAML_SCALAR || launch__scalar_class(node) != LAUNCH__SC_STRING) {
        launch__error_set(c->err, "%s: expected a string, got %s (line %d); give a single "
                          "string value (quote it if it looks like a number or boolean)",
                          field, launch__kind_text(node), node->line);
        return RT_EFORMAT;
    }
    if (memchr(node->text, '\0', node->bytes) != NULL) {
        launch__error_set(c->err, "%s: contains a NUL byte (line %d); remove it", field,
                          node->line);
        return RT_EFORMAT;
    }
    return 0;
}

/* An integer field in [min, max]; *have says whether it was present. */
int launch__get_int(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                    const char *field, int64_t min, int64_t max, bool *have, int64_t *value)
{
    const launch__yaml_node_t *node;
    *have = false;
    int rc = launch__map_get(c, map, key, field, &node);
    if (rc != 0 || node == NULL)
        return rc;
    char shown[120] = "";
    if (node->kind == LAUNCH__YAML_SCALAR)
        launch__quote(node->text, node->bytes, shown, sizeof shown);
    if (node->kind != LAUNCH__YAML_SCALAR || launch__scalar_class(node) != LAUNCH__SC_INT) {
        launch__error_set(c->err, "%s: expected an integer, got %s%s%s (line %d); write a whole "
                          "number without quotes, e.g. %s: %lld", field, launch__kind_text(node),
                          shown[0] ? " " : "", shown, node->line, key, (long long)min);
        return RT_EFORMAT;
    }
    const char *s = node->text;
    size_t sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (!launch__all_digits(s + sign, node->bytes - sign)) {
        launch__error_set(c->err, "%s: %s is not a decimal integer (line %d); write it in "
                          "decimal, e.g. %s: %lld", field, shown, node->line, key, (long long)min);
        return RT_EFORMAT;
    }
    /* Kubernetes' YAML decoder (YAML 1.1) reads 010 as octal 8: a leading
     * zero is refused, never read as 10. 0x10 and 0o10 were refused above. */
    size_t digits = node->bytes - sign;
    if (digits > 1 && s[sign] == '0') {
        size_t zeros = 0;
        while (zeros + 1 < digits && s[sign + zeros] == '0')
            zeros++;
        launch__error_set(c->err, "%s: %s has a leading zero (line %d), so Kubernetes does not "
                          "read it as decimal (YAML 1.1: 010 is octal 8); write it without "
                          "leading zeros, e.g. %s: %.*s", field, shown, node->line, key, (int)(digits - zeros),
                          s + sign + zeros);
        return RT_EFORMAT;
    }
    /* Digits beyond 18 overflow int64 and are out of every range here. */
    int64_t v = 0;
    bool huge = digits > 18;
    if (!huge)
        for (size_t i = 0; i < digits; i++)
            v = v * 10 + (s[sign + i] - '0');
    if (s[0] == '-')
        v = -v;
    if (huge || v < min || v > max) {
        launch__error_set(c->err, "%s: %s is out of range (line %d); use %lld..%lld", field,
                          shown, node->line, (long long)min, (long long)max);
        return RT_ERANGE;
    }
    *have = true;
    *value = v;
    return 0;
}

int launch__get_bool(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                     const char *field, bool *value)
{
    const launch__yaml_node_t *node;
    int rc = launch__map_get(c, map, key, field, &node);
    if (rc != 0 || node == NULL)
        return rc;
    static const char *const yes[] = {"true", "True", "TRUE", NULL};
    static const char *const no[] = {"false", "False", "FALSE", NULL};
    if (node->kind == LAUNCH__YAML_SCALAR && node->plain && launch__text_in(node->text, yes)) {
        *value = true;
        return 0;
    }
    if (node->kind == LAUNCH__YAML_SCALAR && node->plain && launch__text_in(node->text, no)) {
        *value = false;
        return 0;
    }
    char shown[120] = "";
    if (node->kind == LAUNCH__YAML_SCALAR)
        launch__quote(node->text, node->bytes, shown, sizeof shown);
    launch__error_set(c->err, "%s: expected true or false, got %s%s%s (line %d); write "
                      "%s: true or %s: false", field, launch__kind_text(node), shown[0] ? " " : "",
                      shown, node->line, key, key);
    return RT_EFORMAT;
}

int launch__check_label(launch__ctx_t *c, const launch__yaml_node_t *node, const char *field,
                        bool dns1035)
{
    bool ok = dns1035 ? launch_is_dns1035_label(node->text, node->bytes)
                      : launch_is_dns1123_label(node->text, node->bytes);
    if (ok)
        return 0;
    char shown[120];
    launch__quote(node->text, node->bytes, shown, sizeof shown);
    launch__error_set(c->err, "%s: %s is not a valid %s (at most 63 characters: lower-case "
                      "letters, digits and '-', %s, ending with a letter or digit) (line %d); "
                      "rename it, e.g. %s", field, shown, dns1035 ? "DNS-1035 label" :
                      "DNS-1123 label", dns1035 ? "starting with a letter" :
                      "starting with a letter or digit", node->line,
                      dns1035 ? "my-job" : "default");
    return RT_EINVAL;
}

int launch__check_kind(launch__ctx_t *c, const launch__yaml_node_t *root, const char *kind)
{
    const launch__yaml_node_t *node;
    int rc = launch__get_string(c, root, "kind", "kind", true, &node);
    if (rc != 0 || strcmp(node->text, kind) == 0)
        return rc;
    char shown[120];
    launch__quote(node->text, node->bytes, shown, sizeof shown);
    const char *hint = "ringtrain-launcher runs an MPIJob (--mpijob) or a TFJob (--tfjob): give "
                       "one of those manifests";
    if (strcmp(node->text, "MPIJob") == 0)
        hint = "for an MPIJob use --mpijob";
    else if (strcmp(node->text, "TFJob") == 0)
        hint = "for a TFJob use --tfjob";
    launch__error_set(c->err, "kind: %s is not %s (line %d); %s", shown, kind, node->line, hint);
    return RT_EINVAL;
}

int launch__get_enum(launch__ctx_t *c, const launch__yaml_node_t *map, const char *key,
                     const char *field, const char *const *values, char *out, size_t out_bytes)
{
    const launch__yaml_node_t *node;
    int rc = launch__get_string(c, map, key, field, false, &node);
    if (rc != 0 || node == NULL)
        return rc;
    if (launch__text_in(node->text, values) && node->bytes < out_bytes) {
        memcpy(out, node->text, node->bytes + 1);
        return 0;
    }
    char shown[120], choices[200] = "";
    launch__quote(node->text, node->bytes, shown, sizeof shown);
    size_t count = 0, used = 0;
    while (values[count] != NULL)
        count++;
    for (size_t i = 0; i < count && used < sizeof choices; i++)
        used += (size_t)snprintf(choices + used, sizeof choices - used, "%s%s",
                                 i == 0 ? "" : i + 1 == count ? " or " : ", ", values[i]);
    launch__error_set(c->err, "%s: %s is not supported (line %d); use %s", field, shown,
                      node->line, choices);
    return RT_EINVAL;
}
