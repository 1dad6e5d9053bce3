/* ringtrain worker: the model zoo. Layouts follow tf_cnn_benchmarks (trivial,
 * lenet), the usual CIFAR ResNet-20 (He et al. 2015, projection shortcuts)
 * and torchvision's ResNet-50/101 v1.5 (stride in the 3x3 convolution), so
 * parameter counts can be checked against PyTorch. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "model.h"

typedef struct {
    const char *name;
    int c, h, w, classes;
    int (*build)(model_t *m);
} model_entry_t;

/* tf_cnn_benchmarks' trivial model: flatten, affine 1, affine 4096, logits. */
static int build_trivial(model_t *m)
{
    int t = model_linear(m, m->input, 1, 1);
    t = model_relu(m, t);
    t = model_linear(m, t, 4096, 1);
    t = model_relu(m, t);
    return model_linear(m, t, m->classes, 1);
}

static int build_mlp(model_t *m)
{
    int t = model_linear(m, m->input, 1024, 1);
    t = model_relu(m, t);
    t = model_linear(m, t, 1024, 1);
    t = model_relu(m, t);
    return model_linear(m, t, m->classes, 1);
}

static int build_lenet(model_t *m)
{
    int t = model_conv(m, m->input, 32, 5, 1, 2, 1, INIT_TORCH_DEFAULT);
    t = model_relu(m, t);
    t = model_maxpool(m, t, 2, 2, 0);
    t = model_conv(m, t, 64, 5, 1, 2, 1, INIT_TORCH_DEFAULT);
    t = model_relu(m, t);
    t = model_maxpool(m, t, 2, 2, 0);
    t = model_linear(m, t, 512, 1);
    t = model_relu(m, t);
    return model_linear(m, t, m->classes, 1);
}

static int conv_bn(model_t *m, int in, int oc, int k, int stride, int pad)
{
    int t = model_conv(m, in, oc, k, stride, pad, 0, INIT_KAIMING_FAN_OUT);
    return t < 0 ? -1 : model_bn(m, t);
}

static int conv_bn_relu(model_t *m, int in, int oc, int k, int stride, int pad)
{
    int t = conv_bn(m, in, oc, k, stride, pad);
    return t < 0 ? -1 : model_relu(m, t);
}

/* Basic block: 3x3 conv (stride) -> bn -> relu -> 3x3 conv -> bn, plus the
 * input (1x1 conv + bn projection when the shape changes), then relu. */
static int basic_block(model_t *m, int in, int oc, int stride)
{
    int main_path = conv_bn_relu(m, in, oc, 3, stride, 1);
    main_path = conv_bn(m, main_path, oc, 3, 1, 1);
    int shortcut = in;
    if (stride != 1 || m->tensors[in].c != oc)
        shortcut = conv_bn(m, in, oc, 1, stride, 0);
    int t = model_add(m, main_path, shortcut);
    return t < 0 ? -1 : model_relu(m, t);
}

/* Bottleneck (v1.5): 1x1 -> 3x3 (stride) -> 1x1 (4x width), projection
 * shortcut when the shape changes. */
static int bottleneck(model_t *m, int in, int width, int stride)
{
    int oc = width * 4;
    int t = conv_bn_relu(m, in, width, 1, 1, 0);
    t = conv_bn_relu(m, t, width, 3, stride, 1);
    t = conv_bn(m, t, oc, 1, 1, 0);
    int shortcut = in;
    if (stride != 1 || m->tensors[in].c != oc)
        shortcut = conv_bn(m, in, oc, 1, stride, 0);
    t = model_add(m, t, shortcut);
    return t < 0 ? -1 : model_relu(m, t);
}

static int build_resnet20(model_t *m)
{
    int t = conv_bn_relu(m, m->input, 16, 3, 1, 1);
    const int widths[3] = {16, 32, 64};
    for (int stage = 0; stage < 3; stage++)
        for (int b = 0; b < 3; b++)
            t = basic_block(m, t, widths[stage], (stage > 0 && b == 0) ? 2 : 1);
    t = model_gap(m, t);
    return model_linear(m, t, m->classes, 1);
}

static int build_imagenet_resnet(model_t *m, const int blocks[4])
{
    int t = conv_bn_relu(m, m->input, 64, 7, 2, 3);
    t = model_maxpool(m, t, 3, 2, 1);
    const int widths[4] = {64, 128, 256, 512};
    for (int stage = 0; stage < 4; stage++)
        for (int b = 0; b < blocks[stage]; b++)
            t = bottleneck(m, t, widths[stage], (stage > 0 && b == 0) ? 2 : 1);
    t = model_gap(m, t);
    return model_linear(m, t, m->classes, 1);
}

static int build_resnet50(model_t *m)
{
    static const int blocks[4] = {3, 4, 6, 3};
    return build_imagenet_resnet(m, blocks);
}

static int build_resnet101(model_t *m)
{
    static const int blocks[4] = {3, 4, 23, 3};
    return build_imagenet_resnet(m, blocks);
}

static const model_entry_t entries[] = {
    {"trivial", 3, 227, 227, 1000, build_trivial},
    {"mlp", 1, 28, 28, 10, build_mlp},
    {"lenet", 1, 28, 28, 10, build_lenet},
    {"resnet20", 3, 32, 32, 10, build_resnet20},
    {"resnet50", 3, 224, 224, 1000, build_resnet50},
    {"resnet101", 3, 224, 224, 1000, build_resnet101},
};
#define ENTRY_COUNT (sizeof entries / sizeof entries[0])

const char *const *model_names(void)
{
    static const char *names[ENTRY_COUNT + 1];
    for (size_t i = 0; i < ENTRY_COUNT; i++)
        names[i] = entries[i].name;
    names[ENTRY_COUNT] = NULL;
    return names;
}

static const model_entry_t *find_entry(const char *name)
{
    for (size_t i = 0; i < ENTRY_COUNT; i++)
        if (name && strcmp(entries[i].name, name) == 0)
            return &entries[i];
    return NULL;
}

int model_default_shape(const char *name, int *c, int *h, int *w, int *classes)
{
    const model_entry_t *e = find_entry(name);
    if (!e)
        return RT_ENOENT;
    *c = e->c;
    *h = e->h;
    *w = e->w;
    *classes = e->classes;
    return 0;
}

int model_create(model_t *m, const char *name, int classes, int batch)
{
    return model_create_on(m, name, classes, batch, NULL);
}

/* The named model's nodes, not yet planned or allocated. */
static int model_define(model_t *m, const model_entry_t *e, int classes,
                        const model_ops_t *ops)
{
    model_begin(m, e->name, e->c, e->h, e->w, classes > 0 ? classes : e->classes);
    if (e->build(m) < 0)
        return RT_EINVAL;
    m->ops = ops;
    return 0;
}



int model_create_planned(model_t *m, const char *name, int classes, int batch,
                         const model_ops_t *ops)
{
    const model_entry_t *e = find_entry(name);
    if (!e)
        return RT_ENOENT;
    int rc = model_define(m, e, classes, ops);
    return rc ? rc : model_plan(m, batch);
}

int model_create_on(model_t *m, const char *name, int classes, int batch,
                    const model_ops_t *ops)
{
    int rc = model_create_planned(m, name, classes, batch, ops);
    return rc ? rc : model_build(m, batch);
}

int model_plan_bytes(const char *name, int classes, int batch, const model_ops_t *ops,
                     size_t *bytes, size_t *param_bytes)
{
    if (!find_entry(name))
        return RT_ENOENT;
    model_t *m = malloc(sizeof *m); /* ~120 KiB of node and tensor tables */
    if (!m)
        return RT_ENOMEM;
    int rc = model_create_planned(m, name, classes, batch, ops);
    if (!rc)
        *bytes = model_memory_bytes(m);
    if (!rc && param_bytes)
        *param_bytes = m->arena_floats * sizeof(float);
    free(m);
    return rc;
}

int model_graph(model_t *m, const char *name, int classes)
{
    const model_entry_t *e = find_entry(name);
    return e ? model_define(m, e, classes, NULL) : RT_ENOENT;
}

int model_flattens_map(const model_t *m)
{
    for (int i = 0; i < m->node_count; i++) {
        const tensor_t *in = &m->tensors[m->nodes[i].in0];
        if (m->nodes[i].kind == NODE_LINEAR && in->h * in->w > 1)
            return 1;
    }
    return 0;
}
