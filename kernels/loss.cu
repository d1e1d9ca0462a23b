// loss.cu — fused log-softmax + negative log-likelihood with an ignore index, one block per row
// of logits: the row is read for its max, again for the sum of exponentials, and once more to
// write the gradient (softmax − onehot) · grad_scale — the logits, the largest activation of a
// language model, are never materialised as probabilities. Each row's loss (logsumexp − the
// target's logit; 0 when ignored) goes to row_loss, summed on the host in f64 like the CPU side
// (crates/compute/src/cpu/loss.rs). Targets were checked on the host.
#include "rt_common.cuh"

extern "C" __global__ void cross_entropy_f32(const float* __restrict__ logits, const int* __restrict__ targets,
                                             float* __restrict__ dlogits, float* __restrict__ row_loss, int vocab,
                                             int ignore_index, float grad_scale) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const float* xr = logits + row * vocab;
    float* gr = dlogits + row * vocab;
    const int t = targets[row];
    // The target is the same for the whole block, so every thread takes the same branch and the
    // reductions below are reached by all of them.
    if (t == ignore_index) {
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) gr[j] = 0.0f;
        if (threadIdx.x == 0) row_loss[row] = 0.0f;
        return;
    }
    float m = -CUDART_INF_F;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = rt_block_max(m, scratch);
    float s = 0.0f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) s += expf(xr[j] - m);
    s = rt_block_sum(s, scratch);
    const float inv = grad_scale / s;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
        gr[j] = expf(xr[j] - m) * inv - (j == t ? grad_scale : 0.0f);
    if (threadIdx.x == 0) row_loss[row] = (m + logf(s)) - xr[t];
}
