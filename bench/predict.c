/* bench: ringtrain-predict, a performance model of data-parallel training
 * for clusters we cannot rent: per-step compute time + the alpha-beta cost
 * of the chosen allreduce per gradient bucket + overlap with backward ->
 * predicted images/sec and scaling efficiency against one GPU (weak
 * scaling: the batch per GPU is fixed). See bench/SCALING.md.
 *
 * Parameter count, layer order and bucket layout come from the worker's
 * model zoo (built at batch 1 for the layout; at --batch only to measure).
 * Compute time is an INPUT: --step-ms, a file, or timing the CPU kernels on
 * this machine (--compute-from measure). Without any of them the step time
 * is derived from a published GPU figure (--ref-ips of --ref-model, default
 * ResNet-50 at 219 images/sec per Tesla P100, TensorFlow's benchmark page,
 * DGX-1, synthetic data, batch 64) scaled by the models' FLOP ratio.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"
#include "kernels/kernels.h"
#include "predict_model.h"
#include "worker/model.h"

#define PROG "ringtrain-predict"

typedef struct {
    const char *model;
    int gpus, per_node, batch, threads, cores, overlap, measure_steps;
    int link_on_cores; /* the link's bytes cost the shared cores' time too */
    double link_bytes_per_s, latency_s, intra_bytes_per_s, intra_latency_s;
    double step_ms, bucket_mb, ref_ips;
    double shared_step_ms; /* compute per step with all ranks running at once */
    const char *ref_model;
    const char *compute_from; /* NULL, "measure" or a file */
    const char *algo;         /* auto, ring, hier */
    const char *compression;  /* none, fp16, bf16 */
    const char *link_text;
} opts_t;

static int usage_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, PROG ": error: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(" PROG " --help lists the flags)\n");
    return 2;
}

static void usage(void)
{
    printf("usage: " PROG " [flags]\n"
           "  --model NAME         model of the worker's zoo (resnet101)\n"
           "  --gpus N             ranks in all (16)\n"
           "  --gpus-per-node G    ranks per node (8)\n"
           "  --link RATE          inter-node link: 25Gbit, 10gbit, 500mbit, 3.1GB/s (25Gbit)\n"
           "  --latency T          inter-node alpha per message: 5us, 0.1ms (5us)\n"
           "  --intra-bw GB/s      intra-node bandwidth per rank, GB/s (10)\n"
           "  --intra-latency T    intra-node alpha (2us)\n"
           "  --step-ms F          compute per step at one GPU: forward+backward+optimizer\n"
           "  --compute-from X     'measure' (time the CPU kernels here) or a file of\n"
           "                       'forward_ms F', 'backward_ms F', 'optimizer_ms F' lines\n"
           "  --ref-ips F          without either: published images/sec of --ref-model\n"
           "                       per GPU at --batch, scaled by FLOPs (219)\n"
           "  --ref-model NAME     (resnet50: TensorFlow benchmarks, P100, batch 64)\n"
           "  --batch N            batch per rank (64)\n"
           "  --algo A             auto|ring|hier (auto: hier when nodes > 1 and G > 1)\n"
           "  --compression C      none|fp16|bf16: what crosses nodes (the worker's\n"
           "                       --compression); halves the link's bytes (none)\n"
           "  --bucket-mb F        gradient bucket cap, MiB (25, the worker's default)\n"
           "  --overlap on|off     allreduce during backward (on)\n"
           "  --cores C            CPU cores per node shared by its ranks (0: every rank\n"
           "                       has its own device, no sharing)\n"
           "  --threads T          compute threads per rank, with --cores and measure (1)\n"
           "  --shared-step-ms F   with --cores: compute per step measured with all the\n"
           "                       machine's ranks running at once (no communication);\n"
           "                       replaces the proportional slowdown for compute\n"
           "  --link-on-cores on|off  with --cores: on when the inter-node link is the\n"
           "                       nodes' own CPUs (TCP between namespaces of one machine,\n"
           "                       no rate limit), so its transfer time slows with the\n"
           "                       sharing too; off: a link at its rate (off)\n"
           "  --measure-steps N    timed steps with --compute-from measure (3)\n");
}

/* "25Gbit" "10gbit/s" "500mbit" "3.1GB/s" "800MB/s" -> bytes per second */
static int parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || !isfinite(v))
        return -1;
    static const struct { const char *unit; double scale; } units[] = {
        {"gbit", 1e9 / 8}, {"gbit/s", 1e9 / 8}, {"mbit", 1e6 / 8}, {"mbit/s", 1e6 / 8},
        {"kbit", 1e3 / 8}, {"kbit/s", 1e3 / 8}, {"gb/s", 1e9}, {"mb/s", 1e6},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(end, units[i].unit) == 0) {
            *out = v * units[i].scale;
            return 0;
        }
    return -1;
}

/* "5us" "0.1ms" "2ns" "0s" -> seconds */
static int parse_duration(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || !isfinite(v))
        return -1;
    double scale = 0;
    if (strcmp(end, "s") == 0)
        scale = 1;
    else if (strcmp(end, "ms") == 0)
        scale = 1e-3;
    else if (strcmp(end, "us") == 0)
        scale = 1e-6;
    else if (strcmp(end, "ns") == 0)
        scale = 1e-9;
    else
        return -1;
    *out = v * scale;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    double v;
    if (parse_double(s, lo, hi, &v) || v != floor(v))
        return -1;
    *out = (int)v;
    return 0;
}

/* Parses argv into o; returns 0, 2 (bad input, message printed) or 1 (help). */
static int parse_args(int argc, char **argv, opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage();
            return 1;
        }
        if (strncmp(flag, "--", 2) != 0)
            return usage_error("unexpected argument '%s'%s", flag, "");
        const char *val;
        char name[64];
        const char *eq = strchr(flag, '=');
        if (eq) {
            size_t len = (size_t)(eq - flag);
            if (len >= sizeof name)
                return usage_error("unknown flag '%s'%s", flag, "");
            memcpy(name, flag, len);
            name[len] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", flag);
            if (i + 1 >= argc)
                return usage_error("%s needs a value%s", flag, "");
            val = argv[++i];
        }
        if (strcmp(name, "--model") == 0) {
            o->model = val;
        } else if (strcmp(name, "--gpus") == 0) {
            if (parse_int(val, 1, 1 << 20, &o->gpus))
                return usage_error("--gpus '%s': give a whole number of ranks >= 1%s", val, "");
        } else if (strcmp(name, "--gpus-per-node") == 0) {
            if (parse_int(val, 1, 4096, &o->per_node))
                return usage_error("--gpus-per-node '%s': give a whole number >= 1%s", val, "");
        } else if (strcmp(name, "--link") == 0) {
            if (parse_rate(val, &o->link_bytes_per_s))
                return usage_error("--link '%s': give a rate > 0 such as 25Gbit, 10gbit, "
                                   "500mbit or 3.1GB/s%s", val, "");
            o->link_text = val;
        } else if (strcmp(name, "--latency") == 0) {
            if (parse_duration(val, &o->latency_s))
                return usage_error("--latency '%s': give a time >= 0 with a unit: "
                                   "5us, 0.1ms, 500ns%s", val, "");
        } else if (strcmp(name, "--intra-latency") == 0) {
            if (parse_duration(val, &o->intra_latency_s))
                return usage_error("--intra-latency '%s': give a time >= 0 with a unit: "
                                   "2us, 0.01ms%s", val, "");
        } else if (strcmp(name, "--intra-bw") == 0) {
            double gbs;
            if (parse_double(val, 1e-6, 1e6, &gbs))
                return usage_error("--intra-bw '%s': give GB/s as a number > 0, e.g. 10%s", val, "");
            o->intra_bytes_per_s = gbs * 1e9;
        } else if (strcmp(name, "--step-ms") == 0) {
            if (parse_double(val, 1e-6, 1e9, &o->step_ms))
                return usage_error("--step-ms '%s': give milliseconds > 0 per step at one GPU%s",
                                   val, "");
        } else if (strcmp(name, "--shared-step-ms") == 0) {
            if (parse_double(val, 1e-6, 1e9, &o->shared_step_ms))
                return usage_error("--shared-step-ms '%s': give milliseconds > 0 per step%s",
                                   val, "");
        } else if (strcmp(name, "--compute-from") == 0) {
            o->compute_from = val;
        } else if (strcmp(name, "--ref-ips") == 0) {
            if (parse_double(val, 1e-6, 1e9, &o->ref_ips))
                return usage_error("--ref-ips '%s': give images/sec > 0 per GPU%s", val, "");
        } else if (strcmp(name, "--ref-model") == 0) {
            o->ref_model = val;
        } else if (strcmp(name, "--batch") == 0) {
            if (parse_int(val, 1, 65536, &o->batch))
                return usage_error("--batch '%s': give images per rank, 1..65536%s", val, "");
        } else if (strcmp(name, "--algo") == 0) {
            if (strcmp(val, "auto") && strcmp(val, "ring") && strcmp(val, "hier"))
                return usage_error("--algo '%s': use auto, ring or hier%s", val, "");
            o->algo = val;
        } else if (strcmp(name, "--compression") == 0) {
            if (strcmp(val, "none") && strcmp(val, "fp16") && strcmp(val, "bf16"))
                return usage_error("--compression '%s': use none, fp16 or bf16%s", val, "");
            o->compression = val;
        } else if (strcmp(name, "--bucket-mb") == 0) {
            if (parse_double(val, 0.001, 4096, &o->bucket_mb))
                return usage_error("--bucket-mb '%s': give MiB between 0.001 and 4096%s", val, "");
        } else if (strcmp(name, "--overlap") == 0 || strcmp(name, "--link-on-cores") == 0) {
            int *flag = strcmp(name, "--overlap") == 0 ? &o->overlap : &o->link_on_cores;
            if (strcmp(val, "on") == 0)
                *flag = 1;
            else if (strcmp(val, "off") == 0)
                *flag = 0;
            else
                return usage_error("%s '%s': use on or off", name, val);
        } else if (strcmp(name, "--cores") == 0) {
            if (parse_int(val, 0, 1 << 20, &o->cores))
                return usage_error("--cores '%s': give a whole number >= 0 (0: no sharing)%s",
                                   val, "");
        } else if (strcmp(name, "--threads") == 0) {
            if (parse_int(val, 1, 1024, &o->threads))
                return usage_error("--threads '%s': give a whole number 1..1024%s", val, "");
        } else if (strcmp(name, "--measure-steps") == 0) {
            if (parse_int(val, 1, 1000, &o->measure_steps))
                return usage_error("--measure-steps '%s': give a whole number 1..1000%s", val, "");
        } else {
            return usage_error("unknown flag '%s'%s", name, "");
        }
    }
    if (o->gpus % o->per_node != 0 && o->gpus > o->per_node) {
        char a[64];
        snprintf(a, sizeof a, "%d", o->gpus);
        char b[64];
        snprintf(b, sizeof b, "%d", o->per_node);
        return usage_error("--gpus %s is not a multiple of --gpus-per-node %s: give whole nodes",
                           a, b);
    }
    if (o->shared_step_ms > 0 && o->cores <= 0)
        return usage_error("--shared-step-ms needs --cores (it measures ranks sharing "
                           "cores)%s%s", "", "");
    if (o->step_ms > 0 && o->compute_from)
        return usage_error("--step-ms and --compute-from %s both give the compute time: "
                           "use one%s", o->compute_from, "");
    return 0;
}

/* Compute split of one step at one rank, seconds. */
typedef struct {
    double forward, backward, optimizer;
    double *node_backward; /* per node, seconds (sums to backward) */
    char source[256];
} compute_t;

typedef struct {
    compute_t *c;
} trace_ctx_t;

static void measure_trace(void *ctx, int node, int backward, double t0, double t1)
{
    compute_t *c = ((trace_ctx_t *)ctx)->c;
    if (backward) {
        c->node_backward[node] += t1 - t0;
        c->backward += t1 - t0;
    } else {
        c->forward += t1 - t0;
    }
}

/* Times forward + backward (per node) and the optimizer with the CPU kernels
 * at o->batch and o->threads. Returns 0, or 1 with a message. */
static int compute_measure(const opts_t *o, compute_t *c, int nodes)
{
    model_t *m = calloc(1, sizeof *m);
    if (!m)
        return 1;
    int rc = model_create(m, o->model, 0, o->batch);
    if (rc) {
        fprintf(stderr, PROG ": error: cannot build %s at batch %d to measure it: %s "
                "(try a smaller --batch or give --step-ms)\n", o->model, o->batch, rt_strerror(rc));
        free(m);
        return 1;
    }
    kernels_set_num_threads(o->threads);
    model_init_params(m, 1);
    size_t per = (size_t)m->in_c * (size_t)m->in_h * (size_t)m->in_w;
    float *input = rt_alloc_aligned((size_t)o->batch * per * sizeof(float), 64);
    int32_t *labels = calloc((size_t)o->batch, sizeof *labels);
    if (!input || !labels) {
        rt_free_aligned(input);
        free(labels);
        model_free(m);
        free(m);
        return 1;
    }
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)o->batch * per; i++) {
        x = x * 1664525u + 1013904223u;
        input[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
    }
    for (int b = 0; b < o->batch; b++)
        labels[b] = b % m->classes;
    trace_ctx_t ctx = {c};
    /* one untimed warm-up step, then the timed ones */
    for (int s = 0; s <= o->measure_steps; s++) {
        m->trace = s ? measure_trace : NULL;
        m->trace_ctx = &ctx;
        model_forward(m, input, labels, o->batch);
        model_backward(m, input, labels, o->batch, NULL, NULL);
        double t0 = rt_now();
        sgd_update_cpu(m->params, m->momentum, m->grads, m->arena_floats, 1e-6f, 0.9f, 0.0f);
        if (s)
            c->optimizer += rt_now() - t0;
    }
    double inv = 1.0 / o->measure_steps;
    c->forward *= inv;
    c->backward *= inv;
    c->optimizer *= inv;
    for (int i = 0; i < nodes; i++)
        c->node_backward[i] *= inv;
    snprintf(c->source, sizeof c->source,
             "MEASURED here: CPU kernels, %d thread(s), batch %d, mean of %d step(s)",
             o->threads, o->batch, o->measure_steps);
    rt_free_aligned(input);
    free(labels);
    model_free(m);
    free(m);
    return rc;
}

static double model_total_flops(const model_t *m)
{
    double f = 0;
    for (int i = 0; i < m->node_count; i++)
        f += predict_node_flops(m, i);
    return f;
}

/* Backward per node by each node's FLOP share. */
static void split_by_flops(const model_t *m, compute_t *c)
{
    double total = model_total_flops(m);
    for (int i = 0; i < m->node_count; i++)
        c->node_backward[i] = c->backward * predict_node_flops(m, i) / total;
}

/* "forward_ms F" / "backward_ms F" / "optimizer_ms F" lines, # comments. */
static int compute_read_file(const char *path, compute_t *c)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, PROG ": error: --compute-from %s: cannot open it (%s); give 'measure' "
                "or a file of forward_ms/backward_ms/optimizer_ms lines\n", path, strerror(errno));
        return 2;
    }
    char line[256];
    int seen = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char key[64];
        double v;
        if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
            continue;
        if (sscanf(line, "%63s %lf", key, &v) != 2 || !(v >= 0) || !isfinite(v)) {
            fprintf(stderr, PROG ": error: --compute-from %s line %d: expected "
                    "'forward_ms|backward_ms|optimizer_ms <ms >= 0>'\n", path, lineno);
            fclose(f);
            return 2;
        }
        if (strcmp(key, "forward_ms") == 0)
            c->forward = v * 1e-3, seen |= 1;
        else if (strcmp(key, "backward_ms") == 0)
            c->backward = v * 1e-3, seen |= 2;
        else if (strcmp(key, "optimizer_ms") == 0)
            c->optimizer = v * 1e-3;
        else {
            fprintf(stderr, PROG ": error: --compute-from %s line %d: unknown key '%s' "
                    "(forward_ms, backward_ms, optimizer_ms)\n", path, lineno, key);
            fclose(f);
            return 2;
        }
    }
    fclose(f);
    if (seen != 3) {
        fprintf(stderr, PROG ": error: --compute-from %s: needs both forward_ms and backward_ms\n",
                path);
        return 2;
    }
    snprintf(c->source, sizeof c->source, "INPUT from %s (backward split by FLOPs)", path);
    return 0;
}

/* Allreduce time of one bucket for the chosen algorithm and placement. */
static double allreduce_seconds(const opts_t *o, int hier, int nodes, double bytes,
                                predict_link_t intra, predict_link_t inter)
{
    if (hier)
        return predict_hier_seconds(bytes, nodes, o->per_node, intra, inter);
    /* A flat ring's every step waits for its slowest link. */
    return predict_ring_seconds(bytes, o->gpus, nodes > 1 ? inter : intra);
}

/* One bucket's allreduce on shared cores: the copies, reductions and
 * per-message overheads take `share` times longer; the bytes on a rate-limited
 * inter-node link do not (a NIC keeps its rate whatever the cores do) unless
 * --link-on-cores says the link is itself those cores. */
static double comm_seconds(const opts_t *o, int hier, int nodes, double bytes,
                           predict_link_t intra, predict_link_t inter, double share)
{
    double all = allreduce_seconds(o, hier, nodes, bytes, intra, inter);
    if (share <= 1.0)
        return all;
    double wire = 0.0;
    if (nodes > 1 && !o->link_on_cores) {
        predict_link_t none = {0.0, 0.0}, bytes_only = {0.0, inter.beta};
        wire = allreduce_seconds(o, hier, nodes, bytes, none, bytes_only);
    }
    return (all - wire) * share + wire;
}

static void fmt_rate(double bytes_per_s, char *buf, size_t bytes)
{
    snprintf(buf, bytes, "%.3g GB/s = %.3g Gbit/s", bytes_per_s / 1e9, bytes_per_s * 8 / 1e9);
}

int main(int argc, char **argv)
{
    opts_t o = {
        .model = "resnet101", .gpus = 16, .per_node = 8, .batch = 64, .threads = 1,
        .cores = 0, .overlap = 1, .measure_steps = 3,
        .link_bytes_per_s = 25e9 / 8, .latency_s = 5e-6, .intra_bytes_per_s = 10e9,
        .intra_latency_s = 2e-6, .step_ms = 0, .bucket_mb = 25, .ref_ips = 219,
        .ref_model = "resnet50", .compute_from = NULL, .algo = "auto", .compression = "none",
        .link_text = "25Gbit",
    };
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    int per_node = o.gpus < o.per_node ? o.gpus : o.per_node;
    o.per_node = per_node;
    int nodes = o.gpus / per_node;

    /* Layout and FLOPs at batch 1 (the activation arena of a large model at
     * the real batch would be gigabytes); FLOPs scale with the batch. */
    model_t *m = calloc(1, sizeof *m);
    model_t *ref = calloc(1, sizeof *ref);
    compute_t c = {0};
    c.node_backward = calloc(MODEL_MAX_NODES, sizeof(double));
    size_t *bucket_floats = calloc(PREDICT_MAX_BUCKETS, sizeof(size_t));
    int *bucket_node = calloc(PREDICT_MAX_BUCKETS, sizeof(int));
    double *ready = calloc(PREDICT_MAX_BUCKETS, sizeof(double));
    double *comm = calloc(PREDICT_MAX_BUCKETS, sizeof(double));
    if (!m || !ref || !c.node_backward || !bucket_floats || !bucket_node || !ready || !comm) {
        fprintf(stderr, PROG ": error: out of memory\n");
        rc = 1;
        goto out;
    }
    /* Only the layout is read: nothing is allocated. */
    rc = model_create_planned(m, o.model, 0, 1, NULL);
    if (rc == RT_ENOENT) {
        char names[256] = "";
        for (const char *const *n = model_names(); *n; n++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                     names[0] ? ", " : "", *n);
        fprintf(stderr, PROG ": error: --model '%s' is not in the worker's zoo: use one of %s\n",
                o.model, names);
        rc = 2;
        goto out;
    }
    if (rc) {
        fprintf(stderr, PROG ": error: cannot build %s: %s\n", o.model, rt_strerror(rc));
        rc = 1;
        goto out;
    }
    double flops_sample = model_total_flops(m); /* forward, batch 1 */

    if (o.step_ms > 0) {
        double step = o.step_ms * 1e-3;
        c.forward = step / 3.0;
        c.backward = step - c.forward;
        snprintf(c.source, sizeof c.source,
                 "INPUT --step-ms %g (split 1/3 forward, 2/3 backward by FLOPs)", o.step_ms);
        split_by_flops(m, &c);
    } else if (o.compute_from && strcmp(o.compute_from, "measure") == 0) {
        rc = compute_measure(&o, &c, m->node_count);
        if (rc)
            goto out;
    } else if (o.compute_from) {
        rc = compute_read_file(o.compute_from, &c);
        if (rc)
            goto out;
        split_by_flops(m, &c);
    } else {
        rc = model_create_planned(ref, o.ref_model, 0, 1, NULL);
        if (rc) {
            fprintf(stderr, PROG ": error: --ref-model '%s' is not in the worker's zoo "
                    "(resnet50 is the default)\n", o.ref_model);
            rc = 2;
            goto out;
        }
        double ratio = flops_sample / model_total_flops(ref);
        double step = o.batch / o.ref_ips * ratio;
        c.forward = step / 3.0;
        c.backward = step - c.forward;
        snprintf(c.source, sizeof c.source,
                 "INPUT, not measured: %s at %g images/sec per GPU (--ref-ips; default: "
                 "TensorFlow benchmarks, Tesla P100, synthetic, batch 64) x FLOP ratio %.3f",
                 o.ref_model, o.ref_ips, ratio);
        split_by_flops(m, &c);
    }

    int buckets = predict_buckets_plan(m, o.bucket_mb, bucket_floats, bucket_node);
    int hier = strcmp(o.algo, "hier") == 0 ||
               (strcmp(o.algo, "auto") == 0 && nodes > 1 && per_node > 1);
    predict_link_t intra = {o.intra_latency_s, 1.0 / o.intra_bytes_per_s};
    /* Compression: the ring and hier send 16-bit values between nodes
     * (hier's shared-memory phases stay fp32; on one node the worker's
     * shared-memory allreduce does not compress at all). */
    double wire_bytes = strcmp(o.compression, "none") == 0 ? 1.0 : 0.5;
    predict_link_t inter = {o.latency_s, wire_bytes / o.link_bytes_per_s};

    /* Ranks sharing a node's CPU cores (the validation host): compute slows
     * by the oversubscription, communication's CPU work too, and overlap
     * needs a core the compute threads leave free. */
    /* Without a spare core the progress thread gets one only in time
     * slices: the model then takes no overlap at all, a bound from below.
     * (Letting the link's transfers overlap in full, a bound from above,
     * predicted LeNet at 2 x 2 pods on 1 Gbit/s links +19%; no overlap -14%;
     * bench/SCALING.md.) */
    double share = 1.0, share1 = 1.0;
    int overlap = o.overlap;
    if (o.cores > 0) {
        double demand = (double)per_node * o.threads;
        share = demand > o.cores ? demand / o.cores : 1.0;
        share1 = o.threads > o.cores ? (double)o.threads / o.cores : 1.0;
        if (demand >= o.cores)
            overlap = 0;
    }
    /* Measured compute with the ranks sharing the cores replaces the
     * proportional rule for compute (not for communication). */
    double cshare = share;
    if (o.shared_step_ms > 0)
        cshare = o.shared_step_ms * 1e-3 / (c.forward + c.backward + c.optimizer);
    double fwd = c.forward * cshare, bwd = c.backward * cshare, opt = c.optimizer * cshare;
    /* backward runs nodes last to first; bucket k is ready when node[k] ends */
    double t = 0, comm_total = 0, bytes_total = 0;
    int next = 0;
    for (int i = m->node_count - 1; i >= 0 && next < buckets; i--) {
        t += c.node_backward[i] * cshare;
        while (next < buckets && bucket_node[next] == i) {
            double bytes = (double)bucket_floats[next] * sizeof(float);
            ready[next] = t;
            comm[next] = o.gpus > 1 ? comm_seconds(&o, hier, nodes, bytes, intra, inter, share)
                                    : 0.0;
            comm_total += comm[next];
            bytes_total += bytes;
            next++;
        }
    }
    double bwd_comm = predict_schedule(ready, comm, buckets, bwd, overlap);
    double step = fwd + bwd_comm + opt;
    double step1 = (c.forward + c.backward + c.optimizer) * share1;
    double ips = o.gpus * o.batch / step;
    double ips1 = o.batch / step1;
    double eff = ips / (o.gpus * ips1);

    char link[96], intra_bw[96];
    fmt_rate(o.link_bytes_per_s, link, sizeof link);
    fmt_rate(o.intra_bytes_per_s, intra_bw, sizeof intra_bw);
    printf("# " PROG ": alpha-beta model of data-parallel training (see bench/SCALING.md)\n");
    printf("Model:        %s, %.2fM parameters, %.1f MiB of gradients, %.2f GFLOP forward per image\n",
           o.model, m->param_count / 1e6, bytes_total / 1048576.0, flops_sample / 1e9);
    printf("Buckets:      %d (first ~1 MiB, then %g MiB at layer boundaries, as the worker), "
           "floats:", buckets, o.bucket_mb);
    for (int k = 0; k < buckets; k++)
        printf(" %zu", bucket_floats[k]);
    printf("\n");
    printf("Placement:    %d rank(s) = %d node(s) x %d, batch %d per rank (weak scaling)\n",
           o.gpus, nodes, per_node, o.batch);
    printf("Allreduce:    %s, overlap %s%s, %s between nodes\n",
           o.gpus == 1 ? "none (one rank)" : hier ? "hier (intra reduce-scatter, inter ring per slice, intra allgather)"
                                                  : "flat ring",
           overlap ? "on" : "off",
           overlap != o.overlap ? " (no core left for the progress thread)" : "",
           wire_bytes < 1.0 ? o.compression : "fp32");
    printf("Inputs:\n");
    printf("  compute     %s\n", c.source);
    printf("              forward %.2f ms, backward %.2f ms, optimizer %.2f ms per step at one rank\n",
           c.forward * 1e3, c.backward * 1e3, c.optimizer * 1e3);
    printf("  inter-node  alpha %.3g us, %s (--link %s, --latency)\n", o.latency_s * 1e6, link,
           o.link_text);
    printf("  intra-node  alpha %.3g us, %s (--intra-latency, --intra-bw)\n",
           o.intra_latency_s * 1e6, intra_bw);
    if (o.cores > 0)
        printf("  cores       %d per node, %d thread(s) per rank: compute x%.2f at %d rank(s)/node"
               " (%s), communication x%.2f; the link's bytes %s\n",
               o.cores, o.threads, cshare, per_node,
               o.shared_step_ms > 0 ? "MEASURED, --shared-step-ms" : "proportional", share,
               o.link_on_cores ? "on the cores too (--link-on-cores on)" : "at its rate");
    printf("Step time (predicted, per rank):\n");
    printf("  forward                 %10.3f ms\n", fwd * 1e3);
    printf("  backward                %10.3f ms\n", bwd * 1e3);
    printf("  allreduce (all buckets) %10.3f ms, exposed %.3f ms\n", comm_total * 1e3,
           (bwd_comm - bwd) * 1e3);
    printf("  optimizer               %10.3f ms\n", opt * 1e3);
    printf("  step                    %10.3f ms\n", step * 1e3);
    printf("one rank: %.2f images/sec (step %.3f ms)\n", ips1, step1 * 1e3);
    printf("predicted images/sec: %.2f (%.2f per rank)\n", ips, ips / o.gpus);
    printf("scaling efficiency: %.3f\n", eff);

    rc = 0;
out:
    free(comm);
    free(ready);
    free(bucket_node);
    free(bucket_floats);
    free(c.node_backward);
    model_free(ref);
    free(ref);
    model_free(m);
    free(m);
    return rc;
}
