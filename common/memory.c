/* ringtrain common: how much memory this process can still take, so that
 * programs refuse work that cannot fit with a figure, before the OOM killer
 * ends it without one.
 *
 * Two bounds, the lower wins: the host's MemAvailable (/proc/meminfo: free
 * memory plus what the kernel can reclaim), and the headroom under this
 * process's cgroup memory limit, which is what a Kubernetes pod's
 * `resources.limits.memory` becomes. The headroom of a cgroup is its limit
 * less its working set (usage less inactive file pages: what the kubelet and
 * the OOM killer go by); every level from the process's cgroup up to the
 * root is checked, v2 (memory.max) and v1 (memory.limit_in_bytes) alike.
 * A cgroup path that is not visible (a container's cgroup namespace mounts
 * its own cgroup at the root) ends the walk at the root of the mount, which
 * is then the container's own cgroup. */
#include "common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A v1 "no limit" is a page-rounded 2^63-1; anything this large is none. */
#define NO_LIMIT (UINT64_C(1) << 60)

/* The first number in a file, or in the line starting with key (key NULL:
 * the file's first word; "max" is none). 0 on success. */
static int read_number(const char *path, const char *key, uint64_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[512];
    int rc = -1;
    size_t klen = key ? strlen(key) : 0;
    while (rc != 0 && fgets(line, sizeof line, f)) {
        const char *p = line;
        if (key) {
            if (strncmp(line, key, klen) != 0 || (line[klen] != ' ' && line[klen] != ':'))
                continue;
            p = line + klen + 1;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "max", 3) == 0) {
            *out = UINT64_MAX;
            rc = 0;
        } else if (sscanf(p, "%" SCNu64, out) == 1) {
            rc = 0;
        }
        if (!key)
            break;
    }
    fclose(f);
    return rc;
}

typedef struct {
    const char *dir;       /* the hierarchy's mount, under root */
    const char *limit, *usage, *stat_key;
    int v1;
} cgroup_kind_t;

static const cgroup_kind_t kinds[] = {
    {"/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file", 0},
    {"/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
     "total_inactive_file", 1},
};

/* One cgroup directory: its limit and working set, if it has a limit. */
static void check_level(const char *dir, const cgroup_kind_t *k, rt_host_memory_t *m)
{
    char path[4400];
    uint64_t limit = 0, usage = 0, inactive = 0;
    snprintf(path, sizeof path, "%s/%s", dir, k->limit);
    if (read_number(path, NULL, &limit) != 0 || limit >= NO_LIMIT)
        return;
    snprintf(path, sizeof path, "%s/%s", dir, k->usage);
    if (read_number(path, NULL, &usage) != 0)
        usage = 0;
    snprintf(path, sizeof path, "%s/memory.stat", dir);
    if (read_number(path, k->stat_key, &inactive) != 0 || inactive > usage)
        inactive = 0;
    uint64_t used = usage - inactive;
    uint64_t room = used < limit ? limit - used : 0;
    if (room < m->cgroup_room) {
        m->cgroup_room = room;
        m->cgroup_limit = limit;
        m->cgroup_used = used;
    }
}

/* This process's path in the hierarchy from /proc/self/cgroup: the v2
 * line ("0::/path") or the v1 line naming the memory controller. */
static int own_path(const char *root, int v1, char *out, size_t bytes)
{
    char path[4200], line[4200];
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int rc = -1;
    while (rc != 0 && fgets(line, sizeof line, f)) {
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (!b)
            continue;
        *b = '\0';
        const char *controllers = a + 1;
        int match = v1 ? strstr(controllers, "memory") != NULL
                       : strncmp(line, "0:", 2) == 0 && controllers[0] == '\0';
        if (!match)
            continue;
        b[1 + strcspn(b + 1, "\n")] = '\0';
        snprintf(out, bytes, "%s", b + 1);
        rc = 0;
    }
    fclose(f);
    return rc;
}

/* Every level from this process's cgroup up to the mount's root. */
static void check_hierarchy(const char *root, const cgroup_kind_t *k, rt_host_memory_t *m)
{
    char own[4096] = "/", dir[4400];
    if (own_path(root, k->v1, own, sizeof own) != 0)
        snprintf(own, sizeof own, "/");
    for (;;) {
        snprintf(dir, sizeof dir, "%s%s%s", root, k->dir, strcmp(own, "/") == 0 ? "" : own);
        check_level(dir, k, m);
        char *slash = strrchr(own, '/');
        if (!slash || slash == own)
            break;
        *slash = '\0';
    }
    if (strcmp(own, "/") != 0) {
        snprintf(dir, sizeof dir, "%s%s", root, k->dir);
        check_level(dir, k, m);
    }
}

int rt_host_memory_at(const char *root, rt_host_memory_t *m)
{
    memset(m, 0, sizeof *m);
    m->meminfo = UINT64_MAX;
    m->cgroup_room = UINT64_MAX;
    char path[4200];
    snprintf(path, sizeof path, "%s/proc/meminfo", root);
    uint64_t kib = 0;
    if (read_number(path, "MemAvailable", &kib) == 0)
        m->meminfo = kib * 1024;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        check_hierarchy(root, &kinds[i], m);
    m->by_cgroup = m->cgroup_room < m->meminfo;
    m->available = m->by_cgroup ? m->cgroup_room : m->meminfo;
    return m->available == UINT64_MAX ? RT_ENOENT : 0;
}

int rt_host_memory(rt_host_memory_t *m)
{
    return rt_host_memory_at("", m);
}

void rt_format_bytes(uint64_t bytes, char *buf, size_t len)
{
    double gib = (double)bytes / (double)(UINT64_C(1) << 30);
    if (gib >= 100.0)
        snprintf(buf, len, "%.0f GiB", gib);
    else if (gib >= 1.0)
        snprintf(buf, len, "%.1f GiB", gib);
    else
        snprintf(buf, len, "%.0f MiB", (double)bytes / (double)(UINT64_C(1) << 20));
}

void rt_host_memory_describe(const rt_host_memory_t *m, char *buf, size_t len)
{
    char avail[32], limit[32], used[32];
    rt_format_bytes(m->available, avail, sizeof avail);
    if (!m->by_cgroup) {
        snprintf(buf, len, "%s available (MemAvailable)", avail);
        return;
    }
    rt_format_bytes(m->cgroup_limit, limit, sizeof limit);
    rt_format_bytes(m->cgroup_used, used, sizeof used);
    snprintf(buf, len, "%s available (cgroup memory limit %s, %s in use)", avail, limit, used);
}
