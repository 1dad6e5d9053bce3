/* ringtrain worker: model graph, arena layout, forward and backward through
 * the model's kernel table (model_ops_cpu here; the CUDA one is in
 * device_cuda.c). See model.h for the memory layout and why it is that way. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "kernels/kernels.h"
#include "rng.h"

/* Arena offsets are kept 64-byte aligned (16 floats). */
#define ALIGN_FLOATS 16

static void *host_alloc(size_t bytes)
{
    return rt_alloc_aligned(bytes, 64);
}

static void host_copy(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
}

static float host_loss_forward(float *loss, float *probs, const float *logits,
                               const int32_t *labels, int B, int K)
{
    (void)loss;
    return softmax_cross_entropy_forward_cpu(probs, logits, labels, B, K);
}

const model_ops_t model_ops_cpu = {
    .name = "cpu",
    .device_memory = 0,
    .alloc = host_alloc,
    .release = rt_free_aligned,
    .copy = host_copy,
    .conv_workspace_floats = conv2d_workspace_floats,
    .conv_forward = conv2d_forward_cpu,
    .conv_backward = conv2d_backward_cpu,
    .bn_forward_train = batchnorm_forward_train_cpu,
    .bn_forward_eval = batchnorm_forward_eval_cpu,
    .bn_backward = batchnorm_backward_cpu,
    .relu_forward = relu_forward_cpu,
    .relu_backward = relu_backward_cpu,
    .add_forward = add_forward_cpu,
    .add_inplace = add_inplace_cpu,
    .maxpool_forward = maxpool2d_forward_cpu,
    .maxpool_backward = maxpool2d_backward_cpu,
    .avgpool_forward = avgpool2d_forward_cpu,
    .avgpool_backward = avgpool2d_backward_cpu,
    .gap_forward = global_avgpool_forward_cpu,
    .gap_backward = global_avgpool_backward_cpu,
    .linear_forward = linear_forward_cpu,
    .linear_backward = linear_backward_cpu,
    .loss_forward = host_loss_forward,
    .loss_backward = softmax_cross_entropy_backward_cpu,
    .accuracy_count = accuracy_count_cpu,
    .sgd_update = sgd_update_cpu,
};

static size_t per_sample(const tensor_t *t)
{
    return (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

/* Bytes of one activation element on m's ops (fp32 unless they say). */
static size_t act_bytes(const model_t *m)
{
    return m->ops && m->ops->act_bytes ? m->ops->act_bytes : sizeof(float);
}

/* Arena floats a tensor's activation or gradient takes at m->batch (a
 * 2-byte element takes half a float). */
static size_t act_floats(const model_t *m, const tensor_t *t)
{
    size_t bytes = per_sample(t) * (size_t)m->batch * act_bytes(m);
    return (bytes + sizeof(float) - 1) / sizeof(float);
}

static int add_tensor(model_t *m, int c, int h, int w, int producer)
{
    if (m->tensor_count >= MODEL_MAX_TENSORS || c <= 0 || h <= 0 || w <= 0)
        return -1;
    int id = m->tensor_count++;
    tensor_t *t = &m->tensors[id];
    memset(t, 0, sizeof *t);
    t->c = c;
    t->h = h;
    t->w = w;
    t->producer = producer;
    t->last_consumer = -1;
    t->storage = id;
    t->grad_storage = id;
    return id;
}

static node_t *add_node(model_t *m, node_kind_t kind, int in0, int in1)
{
    if (m->node_count >= MODEL_MAX_NODES || in0 < 0 || in0 >= m->tensor_count)
        return NULL;
    if (in1 >= m->tensor_count)
        return NULL;
    node_t *n = &m->nodes[m->node_count];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->in0 = in0;
    n->in1 = in1;
    n->out = -1;
    return n;
}

/* Registers the node just filled in and gives it an output tensor. */
static int finish_node(model_t *m, node_t *n, int c, int h, int w)
{
    int id = add_tensor(m, c, h, w, m->node_count);
    if (id < 0)
        return -1;
    n->out = id;
    m->node_count++;
    m->logits = id;
    return id;
}

void model_begin(model_t *m, const char *name, int in_c, int in_h, int in_w,
                 int classes)
{
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->in_c = in_c;
    m->in_h = in_h;
    m->in_w = in_w;
    m->classes = classes;
    m->input = add_tensor(m, in_c, in_h, in_w, -1);
    m->logits = m->input;
}

int model_conv(model_t *m, int in, int oc, int k, int stride, int pad,
               int has_bias, init_kind_t init)
{
    node_t *n = add_node(m, NODE_CONV, in, -1);
    if (!n)
        return -1;
    const tensor_t *t = &m->tensors[in];
    conv2d_shape_t s;
    if (conv2d_shape_init(&s, 1, t->c, t->h, t->w, oc, k, k, stride, pad) != 0)
        return -1;
    n->oc = oc;
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    n->has_bias = has_bias;
    n->init = init;
    n->w_count = (size_t)oc * (size_t)t->c * (size_t)k * (size_t)k;
    n->b_count = has_bias ? (size_t)oc : 0;
    return finish_node(m, n, oc, s.OH, s.OW);
}

int model_bn(model_t *m, int in)
{
    node_t *n = add_node(m, NODE_BN, in, -1);
    if (!n)
        return -1;
    const tensor_t *t = &m->tensors[in];
    n->w_count = (size_t)t->c;
    n->b_count = (size_t)t->c;
    return finish_node(m, n, t->c, t->h, t->w);
}

int model_relu(model_t *m, int in)
{
    node_t *n = add_node(m, NODE_RELU, in, -1);
    if (!n)
        return -1;
    const tensor_t *t = &m->tensors[in];
    return finish_node(m, n, t->c, t->h, t->w);
}

static int pool_node(model_t *m, node_kind_t kind, int in, int k, int stride,
                     int pad)
{
    node_t *n = add_node(m, kind, in, -1);
    if (!n)
        return -1;
    const tensor_t *t = &m->tensors[in];
    if (k <= 0 || stride <= 0 || pad < 0 || 2 * pad > k ||
        t->h + 2 * pad < k || t->w + 2 * pad < k)
        return -1;
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    int oh = (t->h + 2 * pad - k) / stride + 1;
    int ow = (t->w + 2 * pad - k) / stride + 1;
    return finish_node(m, n, t->c, oh, ow);
}

int model_maxpool(model_t *m, int in, int k, int stride, int pad)
{
    return pool_node(m, NODE_MAXPOOL, in, k, stride, pad);
}

int model_avgpool(model_t *m, int in, int k, int stride, int pad)
{
    return pool_node(m, NODE_AVGPOOL, in, k, stride, pad);
}

int model_gap(model_t *m, int in)
{
    node_t *n = add_node(m, NODE_GAP, in, -1);
    if (!n)
        return -1;
    return finish_node(m, n, m->tensors[in].c, 1, 1);
}

int model_linear(model_t *m, int in, int out_features, int has_bias)
{
    node_t *n = add_node(m, NODE_LINEAR, in, -1);
    if (!n || out_features <= 0)
        return -1;
    size_t in_features = per_sample(&m->tensors[in]);
    n->oc = out_features;
    n->has_bias = has_bias;
    n->init = INIT_TORCH_DEFAULT;
    n->w_count = (size_t)out_features * in_features;
    n->b_count = has_bias ? (size_t)out_features : 0;
    return finish_node(m, n, out_features, 1, 1);
}

int model_add(model_t *m, int a, int b)
{
    if (b < 0 || b >= m->tensor_count)
        return -1;
    node_t *n = add_node(m, NODE_ADD, a, b);
    if (!n)
        return -1;
    const tensor_t *ta = &m->tensors[a], *tb = &m->tensors[b];
    if (ta->c != tb->c || ta->h != tb->h || ta->w != tb->w)
        return -1;
    return finish_node(m, n, ta->c, ta->h, ta->w);
}

static int root_storage(const model_t *m, int t)
{
    while (m->tensors[t].storage != t)
        t = m->tensors[t].storage;
    return t;
}

static int root_grad(const model_t *m, int t)
{
    while (m->tensors[t].grad_storage != t)
        t = m->tensors[t].grad_storage;
    return t;
}

/* Relu and add may overwrite their first input when this node is its only
 * reader and its producer's backward does not read it (only relu's backward
 * reads its own output). The model input is the caller's and never written. */
static int can_work_in_place(const model_t *m, const node_t *n)
{
    const tensor_t *in = &m->tensors[n->in0];
    if (n->kind != NODE_RELU && n->kind != NODE_ADD)
        return 0;
    if (in->producer < 0 || in->consumers != 1)
        return 0;
    return m->nodes[in->producer].kind != NODE_RELU;
}

/* Offset (floats) for a buffer of `size` floats alive during [lo, hi], not
 * overlapping any already placed buffer whose interval intersects it. */
typedef struct {
    size_t off, size;
    int lo, hi;
} placed_t;

static size_t first_fit(const placed_t *placed, int count, size_t size,
                        int lo, int hi)
{
    size_t off = 0;
    for (;;) {
        int moved = 0;
        for (int i = 0; i < count; i++) {
            const placed_t *p = &placed[i];
            if (p->hi < lo || p->lo > hi)
                continue;
            if (off < p->off + p->size && p->off < off + size) {
                off = rt_align_up(p->off + p->size, ALIGN_FLOATS);
                moved = 1;
            }
        }
        if (!moved)
            return off;
    }
}

/* The gradient pool; its last grad_scratch_floats (the biggest activation
 * gradient) take a second contribution before it is added. */
static void plan_gradients(model_t *m)
{
    int T = m->tensor_count, N = m->node_count;
    int lo[MODEL_MAX_TENSORS], hi[MODEL_MAX_TENSORS];
    static placed_t placed[MODEL_MAX_TENSORS];
    for (int t = 0; t < T; t++) {
        lo[t] = m->tensors[t].producer;
        /* The logits' gradient is written before node N-1 runs backward. */
        hi[t] = (t == m->logits) ? N : m->tensors[t].last_consumer;
    }
    /* A gradient group (tensors sharing one buffer) lives from its earliest
     * producer to its latest consumer. */
    int glo[MODEL_MAX_TENSORS], ghi[MODEL_MAX_TENSORS];
    for (int t = 0; t < T; t++) {
        glo[t] = N + 1;
        ghi[t] = -2;
    }
    for (int t = 0; t < T; t++) {
        if (t == m->input)
            continue;
        int r = root_grad(m, t);
        if (lo[t] < glo[r])
            glo[r] = lo[t];
        if (hi[t] > ghi[r])
            ghi[r] = hi[t];
    }
    size_t total = 0, biggest = 0;
    int count = 0;
    /* Place larger buffers first: fewer gaps. */
    int order[MODEL_MAX_TENSORS], roots = 0;
    for (int t = 0; t < T; t++)
        if (t != m->input && root_grad(m, t) == t)
            order[roots++] = t;
    for (int i = 1; i < roots; i++) {
        int v = order[i], j = i;
        while (j > 0 && per_sample(&m->tensors[order[j - 1]]) < per_sample(&m->tensors[v])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    for (int i = 0; i < roots; i++) {
        int t = order[i];
        size_t size = rt_align_up(act_floats(m, &m->tensors[t]), ALIGN_FLOATS);
        size_t off = first_fit(placed, count, size, glo[t], ghi[t]);
        placed[count++] = (placed_t){off, size, glo[t], ghi[t]};
        m->tensors[t].grad_offset = off;
        if (off + size > total)
            total = off + size;
        if (size > biggest)
            biggest = size;
    }
    /* One more buffer for a second gradient contribution before it is added. */
    m->gradpool_floats = total + biggest;
    m->grad_scratch_floats = biggest;
}

/* Consumers, in-place storage and gradient sharing, from scratch (so a
 * model can be planned again at another batch). */
static void plan_liveness(model_t *m)
{
    int N = m->node_count, T = m->tensor_count;
    for (int t = 0; t < T; t++) {
        tensor_t *tt = &m->tensors[t];
        tt->consumers = 0;
        tt->last_consumer = -1;
        tt->storage = t;
        tt->grad_storage = t;
    }
    for (int i = 0; i < N; i++) {
        node_t *n = &m->nodes[i];
        int ins[2] = {n->in0, n->in1};
        for (int k = 0; k < 2; k++) {
            if (ins[k] < 0)
                continue;
            tensor_t *t = &m->tensors[ins[k]];
            t->consumers++;
            if (i > t->last_consumer)
                t->last_consumer = i;
        }
    }
    for (int i = 0; i < N; i++) {
        node_t *n = &m->nodes[i];
        if (can_work_in_place(m, n)) {
            m->tensors[n->out].storage = n->in0;
            /* Its gradient is dout itself (relu backward works in place). */
            m->tensors[n->in0].grad_storage = n->out;
        }
    }
}

/* Parameters in reverse node order (ready_prefix[i] = end of node i) and
 * the batch-norm running statistics. */
static void plan_params(model_t *m)
{
    int N = m->node_count;
    size_t off = 0;
    m->param_count = 0;
    for (int i = N - 1; i >= 0; i--) {
        node_t *n = &m->nodes[i];
        n->w_off = off;
        off = rt_align_up(off + n->w_count, ALIGN_FLOATS);
        n->b_off = off;
        off = rt_align_up(off + n->b_count, ALIGN_FLOATS);
        m->ready_prefix[i] = off;
        m->param_count += n->w_count + n->b_count;
    }
    m->arena_floats = off ? off : ALIGN_FLOATS;
    size_t state = 0;
    for (int i = 0; i < N; i++) {
        node_t *n = &m->nodes[i];
        if (n->kind != NODE_BN)
            continue;
        n->run_off = state;
        state = rt_align_up(state + 2 * (size_t)m->tensors[n->in0].c, ALIGN_FLOATS);
    }
    m->state_floats = state ? state : ALIGN_FLOATS;
}

/* Activations: one block per storage root, then per-node extras; the
 * largest convolution workspace. */
static void plan_activations(model_t *m, int batch)
{
    int N = m->node_count, T = m->tensor_count;
    size_t act = 0;
    for (int t = 0; t < T; t++) {
        if (t == m->input || root_storage(m, t) != t)
            continue;
        m->tensors[t].act_offset = act;
        act = rt_align_up(act + act_floats(m, &m->tensors[t]), ALIGN_FLOATS);
    }
    size_t workspace = 0;
    for (int i = 0; i < N; i++) {
        node_t *n = &m->nodes[i];
        const tensor_t *in = &m->tensors[n->in0];
        if (n->kind == NODE_BN) {
            n->save_off = act;
            act = rt_align_up(act + 2 * (size_t)in->c, ALIGN_FLOATS);
        } else if (n->kind == NODE_MAXPOOL) {
            n->argmax_off = act; /* int32 and float have the same size */
            act = rt_align_up(act + per_sample(&m->tensors[n->out]) * (size_t)batch,
                              ALIGN_FLOATS);
        } else if (n->kind == NODE_CONV) {
            conv2d_shape_t s;
            conv2d_shape_init(&s, batch, in->c, in->h, in->w, n->oc, n->k, n->k,
                              n->stride, n->pad);
            size_t ws = m->ops->conv_workspace_floats(&s);
            if (ws > workspace)
                workspace = ws;
        }
    }
    m->act_floats = act;
    m->workspace_floats = workspace ? workspace : ALIGN_FLOATS;
}

int model_plan(model_t *m, int batch)
{
    if (m->node_count == 0 || batch <= 0)
        return RT_EINVAL;
    if (m->ops == NULL)
        m->ops = &model_ops_cpu;
    m->batch = batch;
    if (per_sample(&m->tensors[m->logits]) != (size_t)m->classes)
        return RT_EINVAL;
    plan_liveness(m);
    plan_params(m);
    plan_activations(m, batch);
    plan_gradients(m);
    return 0;
}

int model_build(model_t *m, int batch)
{
    int rc = model_plan(m, batch);
    if (rc)
        return rc;
    const model_ops_t *ops = m->ops;
    int N = m->node_count, T = m->tensor_count;
    size_t scratch = m->grad_scratch_floats;
    m->params = ops->alloc(m->arena_floats * sizeof(float));
    m->grads = ops->alloc(m->arena_floats * sizeof(float));
    m->momentum = ops->alloc(m->arena_floats * sizeof(float));
    m->state = ops->alloc(m->state_floats * sizeof(float));
    m->act = ops->alloc(m->act_floats * sizeof(float));
    m->gradpool = ops->alloc(m->gradpool_floats * sizeof(float));
    m->workspace = ops->alloc(m->workspace_floats * sizeof(float));
    m->probs = ops->alloc((size_t)batch * (size_t)m->classes * sizeof(float));
    m->loss = ops->alloc(sizeof(float));
    m->grad_written = calloc((size_t)T, 1);
    if (!m->params || !m->grads || !m->momentum || !m->state || !m->act ||
        !m->gradpool || !m->workspace || !m->probs || !m->loss || !m->grad_written) {
        model_free(m);
        return RT_ENOMEM;
    }
    m->grad_scratch = m->gradpool + (m->gradpool_floats - scratch);

    for (int t = 0; t < T; t++) {
        tensor_t *tt = &m->tensors[t];
        if (t != m->input)
            tt->act = m->act + m->tensors[root_storage(m, t)].act_offset;
        if (t != m->input)
            tt->grad = m->gradpool + m->tensors[root_grad(m, t)].grad_offset;
    }
    for (int i = 0; i < N; i++) {
        node_t *n = &m->nodes[i];
        if (n->kind == NODE_BN) {
            n->save_mean = m->act + n->save_off;
            n->save_rstd = n->save_mean + m->tensors[n->in0].c;
            n->run_mean = m->state + n->run_off;
            n->run_var = n->run_mean + m->tensors[n->in0].c;
        } else if (n->kind == NODE_MAXPOOL) {
            n->argmax = (int32_t *)(void *)(m->act + n->argmax_off);
        }
    }
    return 0;
}

void model_free(model_t *m)
{
    if (!m)
        return;
    const model_ops_t *ops = m->ops ? m->ops : &model_ops_cpu;
    ops->release(m->params);
    ops->release(m->grads);
    ops->release(m->momentum);
    ops->release(m->state);
    ops->release(m->act);
    ops->release(m->gradpool);
    ops->release(m->workspace);
    ops->release(m->probs);
    ops->release(m->loss);
    free(m->grad_written);
    m->params = m->grads = m->momentum = m->state = m->act = NULL;
    m->gradpool = m->workspace = m->probs = m->grad_scratch = m->loss = NULL;
    m->grad_written = NULL;
}

size_t model_memory_bytes(const model_t *m)
{
    return sizeof(float) * (3 * m->arena_floats + m->state_floats + m->act_floats +
                            m->gradpool_floats + m->workspace_floats +
                            (size_t)m->batch * (size_t)m->classes);
}

void model_node_describe(const model_t *m, int node, char *buf, size_t bytes)
{
    static const char *const kinds[] = {"conv", "batchnorm", "relu", "maxpool",
                                        "avgpool", "global-avgpool", "linear", "add"};
    const node_t *n = &m->nodes[node];
    const tensor_t *in = &m->tensors[n->in0], *out = &m->tensors[n->out];
    if (n->kind == NODE_CONV)
        snprintf(buf, bytes, "conv %dx%d/%d %d->%d", n->k, n->k, n->stride, in->c, out->c);
    else if (n->kind == NODE_LINEAR)
        snprintf(buf, bytes, "linear %zu->%d", per_sample(in), out->c);
    else
        snprintf(buf, bytes, "%s %dx%dx%d", kinds[n->kind], out->c, out->h, out->w);
}

static size_t fan_in_of(const model_t *m, const node_t *n)
{
    if (n->kind == NODE_CONV)
        return (size_t)m->tensors[n->in0].c * (size_t)n->k * (size_t)n->k;
    return per_sample(&m->tensors[n->in0]);
}

void model_init_params(model_t *m, uint64_t seed)
{
    memset(m->momentum, 0, m->arena_floats * sizeof(float));
    model_init_params_host(m, seed, m->params, m->state);
}

void model_init_params_host(const model_t *m, uint64_t seed, float *params,
                            float *state)
{
    memset(params, 0, m->arena_floats * sizeof(float));
    for (int i = 0; i < m->node_count; i++) {
        const node_t *n = &m->nodes[i];
        rng_t r;
        rng_init(&r, seed, (uint64_t)i);
        float *w = params + n->w_off, *b = params + n->b_off;
        if (n->kind == NODE_BN) {
            for (size_t j = 0; j < n->w_count; j++)
                w[j] = 1.0f;
            for (size_t j = 0; j < n->b_count; j++)
                b[j] = 0.0f;
            size_t c = (size_t)m->tensors[n->in0].c;
            float *run_mean = state + n->run_off, *run_var = run_mean + c;
            for (size_t j = 0; j < c; j++) {
                run_mean[j] = 0.0f;
                run_var[j] = 1.0f;
            }
            continue;
        }
        if (n->w_count == 0)
            continue;
        size_t fan_in = fan_in_of(m, n);
        if (n->init == INIT_KAIMING_FAN_OUT) {
            double fan_out = (double)n->oc * n->k * n->k;
            float std = (float)sqrt(2.0 / fan_out);
            for (size_t j = 0; j < n->w_count; j++)
                w[j] = std * rng_normal(&r);
        } else {
            float bound = (float)(1.0 / sqrt((double)fan_in));
            for (size_t j = 0; j < n->w_count; j++)
                w[j] = bound * (2.0f * rng_uniform(&r) - 1.0f);
        }
        float bound = (float)(1.0 / sqrt((double)fan_in));
        for (size_t j = 0; j < n->b_count; j++)
            b[j] = bound * (2.0f * rng_uniform(&r) - 1.0f);
    }
}

uint64_t model_shape_hash(const model_t *m)
{
    uint64_t h = rt_fnv1a(RT_FNV_OFFSET, m->name, strlen(m->name));
    int dims[4] = {m->in_c, m->in_h, m->in_w, m->classes};
    h = rt_fnv1a(h, dims, sizeof dims);
    for (int i = 0; i < m->node_count; i++) {
        const node_t *n = &m->nodes[i];
        int64_t desc[10] = {n->kind, n->in0, n->in1, n->oc, n->k, n->stride,
                            n->pad, n->has_bias, (int64_t)n->w_count,
                            (int64_t)n->w_off};
        h = rt_fnv1a(h, desc, sizeof desc);
    }
    uint64_t arena = m->arena_floats;
    return rt_fnv1a(h, &arena, sizeof arena);
}

static conv2d_shape_t conv_shape(const model_t *m, const node_t *n, int B)
{
    const tensor_t *in = &m->tensors[n->in0];
    conv2d_shape_t s;
    conv2d_shape_init(&s, B, in->c, in->h, in->w, n->oc, n->k, n->k, n->stride,
                      n->pad);
    return s;
}

/* Node i is a batch norm whose ReLU (node i + 1, in place on its output,
 * its only reader) the ops fuse into it. */
static int fused_relu(const model_t *m, int i)
{
    const node_t *n = &m->nodes[i];
    if (n->kind != NODE_BN || i + 1 >= m->node_count || !m->ops->bn_relu_forward_train)
        return 0;
    const node_t *next = &m->nodes[i + 1];
    return next->kind == NODE_RELU && next->in0 == n->out &&
           m->tensors[n->out].consumers == 1 && m->tensors[next->out].storage == n->out;
}

static void bn_forward(model_t *m, const node_t *n, int B, int relu)
{
    const model_ops_t *ops = m->ops;
    const tensor_t *in = &m->tensors[n->in0];
    float *out = m->tensors[n->out].act;
    const float *w = m->params + n->w_off, *b = m->params + n->b_off;
    int C = in->c, HW = in->h * in->w;
    if (m->bn_eval)
        (relu ? ops->bn_relu_forward_eval : ops->bn_forward_eval)(
            out, in->act, w, b, n->run_mean, n->run_var, B, C, HW, 1e-5f);
    else
        (relu ? ops->bn_relu_forward_train : ops->bn_forward_train)(
            out, n->save_mean, n->save_rstd, n->run_mean, n->run_var, in->act, w, b, B, C,
            HW, 0.1f, 1e-5f);
}

float model_forward(model_t *m, const float *input, const int32_t *labels,
                    int B)
{
    const model_ops_t *ops = m->ops;
    m->tensors[m->input].act = (float *)(uintptr_t)input;
    for (int i = 0; i < m->node_count; i++) {
        node_t *n = &m->nodes[i];
        const tensor_t *in = &m->tensors[n->in0];
        tensor_t *out = &m->tensors[n->out];
        const float *w = m->params + n->w_off;
        const float *b = n->b_count ? m->params + n->b_off : NULL;
        size_t count = per_sample(out) * (size_t)B;
        double t0 = m->trace ? rt_now() : 0.0;
        switch (n->kind) {
        case NODE_CONV: {
            conv2d_shape_t s = conv_shape(m, n, B);
            ops->conv_forward(out->act, in->act, w, b, &s, m->workspace);
            break;
        }
        case NODE_BN:
            bn_forward(m, n, B, fused_relu(m, i));
            break;
        case NODE_RELU:
            if (i > 0 && fused_relu(m, i - 1))
                break; /* applied by the batch norm before it */
            ops->relu_forward(out->act, in->act, count);
            break;
        case NODE_MAXPOOL:
            ops->maxpool_forward(out->act, n->argmax, in->act, B, in->c, in->h,
                                 in->w, n->k, n->stride, n->pad);
            break;
        case NODE_AVGPOOL:
            ops->avgpool_forward(out->act, in->act, B, in->c, in->h, in->w,
                                 n->k, n->stride, n->pad);
            break;
        case NODE_GAP:
            ops->gap_forward(out->act, in->act, B, in->c, in->h * in->w);
            break;
        case NODE_LINEAR:
            ops->linear_forward(out->act, in->act, w, b, B, (int)per_sample(in),
                                n->oc);
            break;
        case NODE_ADD:
            ops->add_forward(out->act, in->act, m->tensors[n->in1].act, count);
            break;
        }
        if (m->trace)
            m->trace(m->trace_ctx, i, 0, t0, rt_now());
    }
    if (!labels)
        return 0.0f;
    return ops->loss_forward(m->loss, m->probs, m->tensors[m->logits].act,
                             labels, B, m->classes);
}

/* Where a node writes the gradient of input tensor t: straight into t's
 * buffer for the first contribution, into the scratch buffer otherwise (the
 * caller then adds it with finish_input_grad). NULL for the model input. */
static float *input_grad_target(model_t *m, int t, int *accumulate)
{
    *accumulate = 0;
    if (t == m->input)
        return NULL;
    if (!m->grad_written[t]) {
        m->grad_written[t] = 1;
        return m->tensors[t].grad;
    }
    *accumulate = 1;
    return m->grad_scratch;
}

static void finish_input_grad(model_t *m, int t, int accumulate, int B)
{
    if (accumulate)
        m->ops->add_inplace(m->tensors[t].grad, m->grad_scratch,
                            per_sample(&m->tensors[t]) * (size_t)B);
}

void model_backward(model_t *m, const float *input, const int32_t *labels,
                    int B, model_ready_fn ready, void *ctx)
{
    const model_ops_t *ops = m->ops;
    m->tensors[m->input].act = (float *)(uintptr_t)input;
    memset(m->grad_written, 0, (size_t)m->tensor_count);
    ops->loss_backward(m->tensors[m->logits].grad, m->probs, labels, B,
                       m->classes);
    m->grad_written[m->logits] = 1;

    for (int i = m->node_count - 1; i >= 0; i--) {
        node_t *n = &m->nodes[i];
        const tensor_t *in = &m->tensors[n->in0];
        const tensor_t *out = &m->tensors[n->out];
        const float *dout = out->grad;
        const float *w = m->params + n->w_off;
        float *dw = m->grads + n->w_off;
        float *db = n->b_count ? m->grads + n->b_off : NULL;
        size_t count = per_sample(out) * (size_t)B;
        int acc = 0;
        float *din = NULL;
        if (n->kind != NODE_ADD)
            din = input_grad_target(m, n->in0, &acc);
        double t0 = m->trace ? rt_now() : 0.0;
        switch (n->kind) {
        case NODE_CONV: {
            conv2d_shape_t s = conv_shape(m, n, B);
            ops->conv_backward(din, dw, db, dout, in->act, w, &s, m->workspace);
            break;
        }
        case NODE_BN:
            if (fused_relu(m, i))
                ops->bn_relu_backward(din, dw, m->grads + n->b_off, dout, in->act, w,
                                      n->save_mean, n->save_rstd, out->act, B, in->c,
                                      in->h * in->w);
            else
                ops->bn_backward(din, dw, m->grads + n->b_off, dout, in->act, w,
                                 n->save_mean, n->save_rstd, B, in->c, in->h * in->w);
            break;
        case NODE_RELU:
            /* Fused: din is dout's own buffer (in place), and the batch
             * norm's backward masks it. */
            if (!(i > 0 && fused_relu(m, i - 1)))
                ops->relu_backward(din, dout, out->act, count);
            break;
        case NODE_MAXPOOL:
            ops->maxpool_backward(din, dout, n->argmax, B, in->c, in->h, in->w,
                                  out->h, out->w);
            break;
        case NODE_AVGPOOL:
            ops->avgpool_backward(din, dout, B, in->c, in->h, in->w, n->k,
                                  n->stride, n->pad);
            break;
        case NODE_GAP:
            ops->gap_backward(din, dout, B, in->c, in->h * in->w);
            break;
        case NODE_LINEAR:
            ops->linear_backward(din, dw, db, dout, in->act, w, B,
                                 (int)per_sample(in), n->oc);
            break;
        case NODE_ADD: {
            /* d(a + b) = dout for both inputs; the first input usually shares
             * dout's buffer already. */
            int ins[2] = {n->in0, n->in1};
            for (int k = 0; k < 2; k++) {
                if (ins[k] == m->input)
                    continue;
                float *g = m->tensors[ins[k]].grad;
                if (!m->grad_written[ins[k]]) {
                    m->grad_written[ins[k]] = 1;
                    if (g != dout)
                        ops->copy(g, dout, count * act_bytes(m));
                } else {
                    ops->add_inplace(g, dout, count);
                }
            }
            break;
        }
        }
        finish_input_grad(m, n->in0, acc, B);
        if (m->trace)
            m->trace(m->trace_ctx, i, 1, t0, rt_now());
        if (ready)
            ready(ctx, m->ready_prefix[i]);
    }
}

int model_buckets_plan(const model_t *m, double bucket_mb, int max_buckets, size_t *end,
                       int *node)
{
    size_t cap = (size_t)(bucket_mb * 1048576.0 / sizeof(float));
    if (cap < 1)
        cap = 1;
    size_t min_cap = m->arena_floats / (size_t)(max_buckets > 1 ? max_buckets - 1 : 1) + 1;
    if (cap < min_cap)
        cap = min_cap;
    size_t first_cap = MODEL_FIRST_BUCKET_BYTES / sizeof(float);
    if (first_cap > cap)
        first_cap = cap;
    int count = 0;
    size_t start = 0;
    for (int i = m->node_count - 1; i >= 0 && count < max_buckets; i--) {
        size_t ready = m->ready_prefix[i];
        size_t limit = count == 0 ? first_cap : cap;
        if (ready - start >= limit || (i == 0 && ready > start)) {
            end[count] = ready;
            node[count] = i;
            count++;
            start = ready;
        }
    }
    return count;
}
