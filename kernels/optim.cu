// optim.cu — the fused AdamW update: one pass reads the gradient and updates the f32 weight and
// both moments in place (three tensors read and written once, instead of the ~10 elementwise
// passes of an unfused update). PyTorch's order of operations, as the CPU side
// (crates/compute/src/cpu/optim.rs): decay, first moment by lerp, second moment, then the
// bias-corrected step. The host computes the per-step scalars (decay factor, step size,
// sqrt of the second bias correction) once, in the same precision as the CPU side.
#include "rt_common.cuh"

extern "C" __global__ void adamw_f32(float* p, const float* g, float* m, float* v, long long n, float decay,
                                     float beta1, float beta2, float eps, float step_size, float bc2_sqrt) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] + (1.0f - beta1) * (gi - m[i]);
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}
