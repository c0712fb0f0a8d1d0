// Matrix products whose bytes do not depend on the host: every float32
// product of tandem's own models under the `portable` numerics profile.
//
// MKL's only vendor-neutral branch (MKL_CBWR=COMPATIBLE) is SSE2 code that
// runs at a third of the host's rate, and an AMD host still computed other
// model bytes under it than an Intel one. tandem's portable product instead
// calls back into Rust (`matrixmultiply`'s AVX2+FMA kernel, whose blocking is
// fixed at compile time), so it needs its own autograd nodes:
//   linear  y = x wᵀ        dx = dy w,    dw = dyᵀ x
//   matmul  c = a b         da = dc bᵀ,   db = aᵀ dc   (batched over leading dims)
// Everything here is glue; the arithmetic is the callback's.
#include <torch/csrc/autograd/custom_function.h>
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace {

// c[m, n] = a[m, k] · b[k, n], every operand given by its two strides.
using Sgemm = void (*)(int64_t m, int64_t k, int64_t n, const float* a, int64_t rsa, int64_t csa,
                       const float* b, int64_t rsb, int64_t csb, float* c, int64_t rsc, int64_t csc);

thread_local std::string last_error;

// Offset, in elements, of batch entry `index` (counted over the leading
// dimensions in row-major order) in a tensor of these sizes and strides.
int64_t batch_offset(int64_t index, at::IntArrayRef sizes, at::IntArrayRef strides, int64_t batch_dims) {
  int64_t offset = 0;
  for (int64_t d = batch_dims - 1; d >= 0; --d) {
    offset += (index % sizes[d]) * strides[d];
    index /= sizes[d];
  }
  return offset;
}

// a [..., m, k] times b [..., k, n] with the same leading sizes; neither is
// copied: the callback reads any strides. The result is contiguous.
at::Tensor product(Sgemm sgemm, const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() >= 2 && a.dim() == b.dim(), "portable product of shapes ", a.sizes(), " and ", b.sizes());
  const int64_t batch_dims = a.dim() - 2;
  TORCH_CHECK(a.sizes().slice(0, batch_dims) == b.sizes().slice(0, batch_dims) && a.size(-1) == b.size(-2),
              "portable product of shapes ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && a.is_cpu() && b.is_cpu(),
              "portable product needs float32 CPU tensors");
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  std::vector<int64_t> shape(a.sizes().begin(), a.sizes().end());
  shape.back() = n;
  at::Tensor c = at::empty(shape, a.options());
  if (c.numel() == 0) return c;
  if (k == 0) return c.zero_();
  int64_t batches = 1;
  for (int64_t d = 0; d < batch_dims; ++d) batches *= a.size(d);
  const float* pa = a.const_data_ptr<float>();
  const float* pb = b.const_data_ptr<float>();
  float* pc = c.mutable_data_ptr<float>();
  for (int64_t i = 0; i < batches; ++i) {
    sgemm(m, k, n, pa + batch_offset(i, a.sizes(), a.strides(), batch_dims), a.stride(-2), a.stride(-1),
          pb + batch_offset(i, b.sizes(), b.strides(), batch_dims), b.stride(-2), b.stride(-1), pc + i * m * n, n, 1);
  }
  return c;
}

struct LinearNoBias : public torch::autograd::Function<LinearNoBias> {
  // y [N, out] = x [N, in] · w [out, in]ᵀ
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            int64_t sgemm) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["sgemm"] = sgemm;
    return product(reinterpret_cast<Sgemm>(sgemm), x, w.t());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto sgemm = reinterpret_cast<Sgemm>(ctx->saved_data["sgemm"].toInt());
    at::Tensor dx, dw;
    // dw comes out [out, in], the weight's own layout.
    if (ctx->needs_input_grad(0)) dx = product(sgemm, grads[0], saved[1]);
    if (ctx->needs_input_grad(1)) dw = product(sgemm, grads[0].t(), saved[0]);
    return {dx, dw, at::Tensor()};
  }
};

struct Matmul : public torch::autograd::Function<Matmul> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b,
                            int64_t sgemm) {
    ctx->save_for_backward({a, b});
    ctx->saved_data["sgemm"] = sgemm;
    return product(reinterpret_cast<Sgemm>(sgemm), a, b);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto sgemm = reinterpret_cast<Sgemm>(ctx->saved_data["sgemm"].toInt());
    at::Tensor da, db;
    if (ctx->needs_input_grad(0)) da = product(sgemm, grads[0], saved[1].transpose(-1, -2));
    if (ctx->needs_input_grad(1)) db = product(sgemm, saved[0].transpose(-1, -2), grads[0]);
    return {da, db, at::Tensor()};
  }
};

template <typename F>
at::Tensor* guarded(F f) {
  try {
    return new at::Tensor(f());
  } catch (const std::exception& e) {
    last_error = e.what();
    return nullptr;
  }
}

}  // namespace

extern "C" {

// x [N, in], w [out, in] → a new tensor x · wᵀ [N, out], differentiable in
// both; null on error, with the message in `tandem_portable_error`.
at::Tensor* tandem_portable_linear(const at::Tensor* x, const at::Tensor* w, Sgemm sgemm) {
  return guarded([&] { return LinearNoBias::apply(*x, *w, reinterpret_cast<int64_t>(sgemm)); });
}

// a [..., m, k], b [..., k, n] (same leading sizes) → a new tensor a · b.
at::Tensor* tandem_portable_matmul(const at::Tensor* a, const at::Tensor* b, Sgemm sgemm) {
  return guarded([&] { return Matmul::apply(*a, *b, reinterpret_cast<int64_t>(sgemm)); });
}

const char* tandem_portable_error() { return last_error.c_str(); }
}
