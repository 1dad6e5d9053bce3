/* bench: alpha-beta cost functions, the progress thread's schedule and the
 * worker's bucket plan for ringtrain-predict (see predict_model.h). */
#include "predict_model.h"

double predict_ring_seconds(double bytes, int ranks, predict_link_t link)
{
    if (ranks <= 1 || bytes <= 0)
        return 0.0;
    double p = ranks;
    return 2.0 * (p - 1.0) * link.alpha + 2.0 * (p - 1.0) / p * bytes * link.beta;
}

double predict_hier_seconds(double bytes, int nodes, int per_node,
                            predict_link_t intra, predict_link_t inter)
{
    if (bytes <= 0 || nodes * per_node <= 1)
        return 0.0;
    if (nodes <= 1)
        return predict_ring_seconds(bytes, per_node, intra);
    if (per_node <= 1)
        return predict_ring_seconds(bytes, nodes, inter);
    double g = per_node, N = nodes;
    /* reduce-scatter and allgather inside the node: (g-1) steps of n/g each */
    double intra_half = (g - 1.0) * intra.alpha + (g - 1.0) / g * bytes * intra.beta;
    /* g concurrent rings over the nodes, one per slice of n/g, through one
     * link: the link carries g * 2(N-1)/N * n/g bytes. */
    double inter_ring = 2.0 * (N - 1.0) * inter.alpha + 2.0 * (N - 1.0) / N * bytes * inter.beta;
    return 2.0 * intra_half + inter_ring;
}

double predict_schedule(const double *ready, const double *comm, int buckets,
                        double backward, int overlap)
{
    double t = 0.0;
    for (int k = 0; k < buckets; k++) {
        double start = overlap ? ready[k] : backward;
        if (start < t)
            start = t;
        t = start + comm[k];
    }
    return t > backward ? t : backward;
}

int predict_buckets_plan(const model_t *m, double bucket_mb, size_t *floats, int *node)
{
    size_t end[PREDICT_MAX_BUCKETS];
    int count = model_buckets_plan(m, bucket_mb, MODEL_MAX_BUCKETS, end, node);
    for (int k = 0; k < count; k++)
        floats[k] = end[k] - (k == 0 ? 0 : end[k - 1]);
    return count;
}

static double tensor_elements(const model_t *m, int t)
{
    const tensor_t *x = &m->tensors[t];
    return (double)m->batch * x->c * x->h * x->w;
}

double predict_node_flops(const model_t *m, int node)
{
    const node_t *n = &m->nodes[node];
    double out = tensor_elements(m, n->out);
    switch (n->kind) {
    case NODE_CONV: {
        const tensor_t *o = &m->tensors[n->out];
        return 2.0 * m->batch * (double)n->w_count * o->h * o->w;
    }
    case NODE_LINEAR:
        return 2.0 * m->batch * (double)n->w_count;
    case NODE_BN:
        return 8.0 * out;   /* mean, variance, normalise, scale, shift */
    case NODE_MAXPOOL:
    case NODE_AVGPOOL:
        return (double)n->k * n->k * out;
    case NODE_GAP:
        return tensor_elements(m, n->in0);
    case NODE_RELU:
    case NODE_ADD:
        return out;
    }
    return out;
}
