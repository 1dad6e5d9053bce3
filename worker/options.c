/* ringtrain worker: command line, tf_cnn_benchmarks style. One table lists
 * every flag with its type and bounds; the parser and the help text both
 * read it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "kernels/kernels.h"
#include "model.h"
#include "worker.h"

typedef enum { OPT_INT, OPT_LONG, OPT_DOUBLE, OPT_BOOL, OPT_STRING, OPT_CHOICE } opt_type_t;

typedef struct {
    const char *name;
    opt_type_t type;
    size_t offset;
    double min, max;       /* numbers */
    size_t size;           /* strings */
    const char *choices;   /* OPT_CHOICE: "a|b|c", stored as the index */
    const char *help;
} opt_t;

#define OFF(field) offsetof(worker_options_t, field)
#define SZ(field) sizeof(((worker_options_t *)0)->field)
/* Accepted for compatibility, not stored. */
#define NOSTORE ((size_t)-1)

static const opt_t opts[] = {
    {"model", OPT_STRING, OFF(model), 0, 0, SZ(model), NULL,
     "trivial | mlp | lenet | resnet20 | resnet50 | resnet101 (default lenet)"},
    {"batch_size", OPT_INT, OFF(batch_size), 1, 65536, 0, NULL,
     "images per rank per step (default 64)"},
    {"num_batches", OPT_LONG, OFF(num_batches), 1, 1e12, 0, NULL,
     "timed steps (default 100; exclusive with --num_epochs)"},
    {"num_epochs", OPT_DOUBLE, OFF(num_epochs), 1e-9, 1e6, 0, NULL,
     "epochs over the training set instead of --num_batches"},
    {"num_warmup_batches", OPT_INT, OFF(num_warmup_batches), 0, 1e9, 0, NULL,
     "untimed steps before timing starts (default 10)"},
    {"display_every", OPT_INT, OFF(display_every), 1, 1e9, 0, NULL,
     "print a step line every N steps (default 10)"},
    {"data_name", OPT_CHOICE, OFF(data), 0, 0, 0, "synthetic|fashion_mnist",
     "synthetic (default) or fashion_mnist"},
    {"data_dir", OPT_STRING, OFF(data_dir), 0, 0, SZ(data_dir), NULL,
     "directory of the IDX files (default /usr/share/datasets/fashion-mnist)"},
    {"learning_rate", OPT_DOUBLE, OFF(learning_rate), 0, 1e6, 0, NULL,
     "SGD learning rate (default 0.01)"},
    {"lr_scaling", OPT_CHOICE, OFF(lr_scaling), 0, 0, 0, "none|linear",
     "none (default): --learning_rate as given; linear: --learning_rate x the ranks that "
     "take data, so it follows the global batch when a restart changes the world size "
     "(Horovod's lr x size)"},
    {"momentum", OPT_DOUBLE, OFF(momentum), 0, 1, 0, NULL,
     "SGD momentum (default 0.9)"},
    {"weight_decay", OPT_DOUBLE, OFF(weight_decay), 0, 1, 0, NULL,
     "L2 weight decay (default 0.00004)"},
    {"num_intra_threads", OPT_INT, OFF(num_intra_threads), 0, 1024, 0, NULL,
     "compute threads per rank (default 0: the cores of this rank's slot)"},
    {"eval", OPT_BOOL, OFF(eval), 0, 0, 0, NULL,
     "after training, print \"Accuracy @ 1\" on the test set"},
    {"device", OPT_CHOICE, OFF(device), 0, 0, 0, "cpu|cuda",
     "cpu (default) or cuda (one GPU per rank, by local rank)"},
    {"seed", OPT_LONG, OFF(seed), 0, 9.2e18, 0, NULL,
     "seed for initial parameters and data order (default 1234)"},
    {"tf_random_seed", OPT_LONG, OFF(seed), 0, 9.2e18, 0, NULL,
     "alias of --seed"},
    {"bucket_mb", OPT_DOUBLE, OFF(bucket_mb), 0.001, 4096, 0, NULL,
     "gradient bucket size in MiB (default 25)"},
    {"overlap", OPT_BOOL, OFF(overlap), 0, 0, 0, NULL,
     "allreduce buckets while backward runs (default true; --nooverlap to compare)"},
    {"bind", OPT_CHOICE, OFF(bind), 0, 0, 0, "none|core",
     "core (default): bind each rank to its share of the host's cores; none"},
    {"allreduce", OPT_STRING, OFF(allreduce), 0, 0, SZ(allreduce), NULL,
     "force an allreduce algorithm (default auto; see RINGTRAIN_ALLREDUCE)"},
    {"compression", OPT_CHOICE, OFF(compression), 0, 0, 0, "none|fp16|bf16",
     "gradients travel between ranks as fp16 or bf16 in the ring and hier allreduces, "
     "summed in fp32 (default none; shared memory on one host never compresses)"},
    {"variable_update", OPT_CHOICE, OFF(variable_update), 0, 0, 0,
     "allreduce|horovod|parameter_server|independent",
     "allreduce (default; horovod is its alias), parameter_server (servers named by "
     "RINGTRAIN_PS_RANKS) or independent (each rank trains its own copy, no gradient "
     "exchange; the ranks still step together, so images/sec is the compute of a "
     "synchronous job without its gradient traffic)"},
    {"optimizer", OPT_CHOICE, NOSTORE, 0, 0, 0, "momentum|sgd",
     "momentum or sgd: both are SGD with --momentum"},
    {"data_format", OPT_CHOICE, OFF(data_format), 0, 0, 0, "NCHW|NHWC",
     "activation layout on the GPU: NHWC (channels last; default with --use_fp16 / "
     "--use_bf16 where the model allows, the tensor cores' layout) or NCHW (default "
     "otherwise, and the only one on the CPU)"},
    {"use_fp16", OPT_BOOL, OFF(use_fp16), 0, 0, 0, NULL,
     "fp16 activations and tensor-core math, fp32 master weights and optimizer state, "
     "loss scaling (--device=cuda)"},
    {"use_bf16", OPT_BOOL, OFF(use_bf16), 0, 0, 0, NULL,
     "bf16 activations and tensor-core math, fp32 master weights; no loss scaling "
     "(--device=cuda)"},
    {"allow_tf32", OPT_BOOL, OFF(allow_tf32), 0, 0, 0, NULL,
     "fp32 convolutions and GEMMs may use TF32 tensor cores (default true, as PyTorch's "
     "cuDNN convolutions; --noallow_tf32: strict fp32)"},
    {"fp16_loss_scale", OPT_DOUBLE, OFF(fp16_loss_scale), 0, KERN_LOSS_SCALE_MAX, 0,
     NULL, "with --use_fp16: the loss is multiplied by this before backward and the "
     "gradients divided by it (default 128; the start with auto scaling)"},
    {"fp16_enable_auto_loss_scale", OPT_BOOL, OFF(fp16_enable_auto_loss_scale), 0, 0, 0,
     NULL, "with --use_fp16: a step with inf/NaN gradients is skipped and halves the loss "
     "scale; --fp16_inc_loss_scale_every_n clean steps double it"},
    {"fp16_inc_loss_scale_every_n", OPT_INT, OFF(fp16_inc_loss_scale_every_n), 1, 1e9, 0,
     NULL, "with auto loss scaling: clean steps before the scale doubles (default 1000)"},
    {"checkpoint_dir", OPT_STRING, OFF(checkpoint_dir), 0, 0, SZ(checkpoint_dir), NULL,
     "rank 0 writes checkpoints here (from a background thread) and every run resumes "
     "from the newest valid one, at any world size; SIGTERM or SIGUSR1 stops every rank "
     "after the same step with a checkpoint (exit 143)"},
    {"checkpoint_every", OPT_LONG, OFF(checkpoint_every), 0, 1e12, 0, NULL,
     "steps between checkpoints (default 0: one at the end and on a stop)"},
    {"checkpoints_to_keep", OPT_INT, OFF(checkpoints_to_keep), 1, 1e6, 0, NULL,
     "newest checkpoints kept (default 5)"},
    {"stall_timeout", OPT_DOUBLE, OFF(stall_timeout), 0, 1e7, 0, NULL,
     "seconds a gradient allreduce waits for a rank before the job is aborted "
     "(default 60; 0: forever)"},
    {"timeline", OPT_STRING, OFF(timeline), 0, 0, SZ(timeline), NULL,
     "write a Chrome trace (Perfetto) of every rank's layers and allreduces here"},
    {"dump_params", OPT_STRING, OFF(dump_params), 0, 0, SZ(dump_params), NULL,
     "rank 0 writes the final parameters (raw float32) to this file"},
    {"help", OPT_BOOL, OFF(help), 0, 0, 0, NULL, "print this help"},
};
#define OPT_COUNT (sizeof opts / sizeof opts[0])

void worker_options_init(worker_options_t *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->model, sizeof o->model, "lenet");
    o->batch_size = 64;
    o->num_batches = 0;
    o->num_warmup_batches = 10;
    o->display_every = 10;
    o->data = WORKER_DATA_SYNTHETIC;
    snprintf(o->data_dir, sizeof o->data_dir, "/usr/share/datasets/fashion-mnist");
    o->learning_rate = 0.01;
    o->momentum = 0.9;
    o->weight_decay = 0.00004;
    o->device = WORKER_DEVICE_CPU;
    o->seed = 1234;
    o->bucket_mb = 25;
    o->overlap = 1;
    o->bind = 1;
    o->checkpoints_to_keep = 5;
    o->stall_timeout = 60;
    o->allow_tf32 = 1;
    o->fp16_loss_scale = 128;
    o->fp16_inc_loss_scale_every_n = 1000;
    o->data_format = WORKER_LAYOUT_AUTO;
}

const char *worker_usage(void)
{
    static char text[12288];
    if (text[0])
        return text;
    size_t used = (size_t)snprintf(text, sizeof text,
        "usage: ringtrain-worker [--flag=value ...]   (run under mpirun; rank 0 prints)\n"
        "Trains a model data-parallel, tf_cnn_benchmarks style; prints images/sec.\n\n");
    for (size_t i = 0; i < OPT_COUNT && used < sizeof text; i++) {
        const char *arg = opts[i].type == OPT_BOOL ? "" :
                          opts[i].type == OPT_STRING || opts[i].type == OPT_CHOICE ? "=S" : "=N";
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", opts[i].name, arg);
        used += (size_t)snprintf(text + used, sizeof text - used, "  %-24s %s\n", flag,
                                 opts[i].help);
    }
    return text;
}

static int choice_index(const char *choices, const char *value)
{
    int index = 0;
    const char *p = choices;
    size_t len = strlen(value);
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, value, n) == 0)
            return index;
        index++;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static int set_value(worker_options_t *o, const opt_t *opt, const char *value,
                     char *err, size_t err_bytes)
{
    char *base = (char *)o;
    switch (opt->type) {
    case OPT_BOOL: {
        int v;
        if (!value || strcmp(value, "true") == 0 || strcmp(value, "1") == 0 ||
            strcmp(value, "True") == 0)
            v = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
                 strcmp(value, "False") == 0)
            v = 0;
        else {
            snprintf(err, err_bytes, "--%s=%s: expected true or false", opt->name, value);
            return RT_EINVAL;
        }
        *(int *)(void *)(base + opt->offset) = v;
        return 0;
    }
    case OPT_STRING:
        if (strlen(value) >= opt->size) {
            snprintf(err, err_bytes, "--%s: value longer than %zu characters", opt->name,
                     opt->size - 1);
            return RT_EINVAL;
        }
        memcpy(base + opt->offset, value, strlen(value) + 1);
        return 0;
    case OPT_CHOICE: {
        int index = choice_index(opt->choices, value);
        if (index < 0) {
            snprintf(err, err_bytes, "--%s=%s: unknown value; choose one of %s", opt->name,
                     value, opt->choices);
            return RT_EINVAL;
        }
        /* Choices are stored as their index (--bind: none|core, so 0|1). */
        if (opt->offset != NOSTORE)
            *(int *)(void *)(base + opt->offset) = index;
        return 0;
    }
    case OPT_DOUBLE: {
        double v;
        int rc = rt_parse_double(value, opt->min, opt->max, &v);
        if (rc) {
            snprintf(err, err_bytes, "--%s=%s: %s; expected a number in [%g, %g]", opt->name,
                     value, rc == RT_ERANGE ? "out of range" : "not a number", opt->min,
                     opt->max);
            return RT_EINVAL;
        }
        *(double *)(void *)(base + opt->offset) = v;
        return 0;
    }
    case OPT_INT:
    case OPT_LONG: {
        uint64_t v;
        int rc = rt_parse_u64(value, (uint64_t)opt->min, (uint64_t)opt->max, 0, &v);
        if (rc) {
            snprintf(err, err_bytes, "--%s=%s: %s; expected a whole number in [%.0f, %.0f]",
                     opt->name, value, rc == RT_ERANGE ? "out of range" : "not a whole number",
                     opt->min, opt->max);
            return RT_EINVAL;
        }
        if (opt->type == OPT_INT)
            *(int *)(void *)(base + opt->offset) = (int)v;
        else if (opt->offset == OFF(seed))
            *(uint64_t *)(void *)(base + opt->offset) = v;
        else
            *(long *)(void *)(base + opt->offset) = (long)v;
        return 0;
    }
    }
    return RT_EINVAL;
}

/* The precision flags against each other and the device. `scaling`: a
 * loss-scale flag was given. */
static int precision_check(const worker_options_t *o, int scaling, char *err,
                           size_t err_bytes)
{
    if (o->use_fp16 && o->use_bf16) {
        snprintf(err, err_bytes, "--use_fp16 and --use_bf16 contradict each other; give one");
        return RT_EINVAL;
    }
    if ((o->use_fp16 || o->use_bf16) && o->device != WORKER_DEVICE_CUDA) {
        snprintf(err, err_bytes, "--use_%s needs --device=cuda (the CPU kernels are fp32 "
                 "only); add --device=cuda or drop it", o->use_fp16 ? "fp16" : "bf16");
        return RT_EINVAL;
    }
    if (!(o->fp16_loss_scale > 0)) {
        snprintf(err, err_bytes, "--fp16_loss_scale=%g: the loss scale must be greater than "
                 "0 (default 128)", o->fp16_loss_scale);
        return RT_EINVAL;
    }
    if (scaling && !o->use_fp16) {
        snprintf(err, err_bytes, "--fp16_loss_scale, --fp16_enable_auto_loss_scale and "
                 "--fp16_inc_loss_scale_every_n apply to --use_fp16 only%s",
                 o->use_bf16 ? " (bf16 needs no loss scaling)" : "; add --use_fp16");
        return RT_EINVAL;
    }
    if (o->data_format == WORKER_LAYOUT_NHWC && o->device != WORKER_DEVICE_CUDA) {
        snprintf(err, err_bytes, "--data_format=NHWC needs --device=cuda (the CPU kernels "
                 "are NCHW); use NCHW or add --device=cuda");
        return RT_EINVAL;
    }
    return 0;
}

int worker_options_parse(worker_options_t *o, int argc, char **argv, char *err,
                         size_t err_bytes)
{
    int saw_batches = 0, saw_epochs = 0, saw_scaling = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(err, err_bytes, "unexpected argument '%s'; flags look like --name=value (see --help)", arg);
            return RT_EINVAL;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *opt = NULL;
        int negated = 0;
        for (size_t k = 0; k < OPT_COUNT; k++)
            if (strlen(opts[k].name) == name_len && strncmp(opts[k].name, name, name_len) == 0)
                opt = &opts[k];
        if (!opt && name_len > 2 && strncmp(name, "no", 2) == 0 && !eq) {
            for (size_t k = 0; k < OPT_COUNT; k++)
                if (opts[k].type == OPT_BOOL && strcmp(opts[k].name, name + 2) == 0)
                    opt = &opts[k];
            negated = opt != NULL;
        }
        if (!opt) {
            snprintf(err, err_bytes, "unknown flag '--%.*s' (see --help for the list)",
                     (int)name_len, name);
            return RT_EINVAL;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (opt->type == OPT_BOOL) {
            if (negated)
                value = "false";
        } else if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, err_bytes, "--%s needs a value", opt->name);
                return RT_EINVAL;
            }
            value = argv[++i];
        }
        int rc = set_value(o, opt, value, err, err_bytes);
        if (rc)
            return rc;
        if (strcmp(opt->name, "num_batches") == 0)
            saw_batches = 1;
        if (strcmp(opt->name, "num_epochs") == 0)
            saw_epochs = 1;
        if (strncmp(opt->name, "fp16_", 5) == 0)
            saw_scaling = 1;
    }
    if (o->help)
        return 0;
    if (saw_batches && saw_epochs) {
        snprintf(err, err_bytes, "--num_batches and --num_epochs are exclusive; give one");
        return RT_EINVAL;
    }
    if (!saw_batches && !saw_epochs)
        o->num_batches = 100;
    int c, h, w, classes;
    if (model_default_shape(o->model, &c, &h, &w, &classes) != 0) {
        char names[256] = "";
        for (const char *const *n = model_names(); *n; n++) {
            strncat(names, *n, sizeof names - strlen(names) - 1);
            if (n[1])
                strncat(names, ", ", sizeof names - strlen(names) - 1);
        }
        snprintf(err, err_bytes, "--model=%s: unknown model; choose one of %s", o->model, names);
        return RT_EINVAL;
    }
    int rc = precision_check(o, saw_scaling, err, err_bytes);
    if (rc)
        return rc;
    if (o->device == WORKER_DEVICE_CPU && strcmp(o->allreduce, "nccl") == 0) {
        snprintf(err, err_bytes, "--allreduce=nccl reduces GPU buffers; add --device=cuda or "
                 "choose a CPU algorithm");
        return RT_EINVAL;
    }
    if (o->variable_update == WORKER_UPDATE_INDEPENDENT && o->checkpoint_dir[0]) {
        snprintf(err, err_bytes, "--checkpoint_dir is not supported with "
                 "--variable_update=independent (every rank's copy of the model differs and a "
                 "checkpoint holds one); use --variable_update=allreduce");
        return RT_EINVAL;
    }
    if (o->device == WORKER_DEVICE_CUDA && o->variable_update == WORKER_UPDATE_PARAMETER_SERVER) {
        snprintf(err, err_bytes, "--device=cuda does not support "
                 "--variable_update=parameter_server yet; train on the GPU with "
                 "--variable_update=allreduce, or use --device=cpu");
        return RT_EINVAL;
    }
    if (o->data == WORKER_DATA_FASHION_MNIST && (c != 1 || h != 28 || w != 28)) {
        snprintf(err, err_bytes,
                 "--model=%s takes %dx%dx%d images but fashion_mnist is 1x28x28; use mlp or lenet, or --data_name=synthetic",
                 o->model, c, h, w);
        return RT_EINVAL;
    }
    return 0;
}
