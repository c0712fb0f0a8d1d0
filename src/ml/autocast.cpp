// libtorch's autocast for one device type, which tch exposes only for CUDA
// and float16.
//
// Autocast is what mixed precision means here: the parameters stay float32,
// and each operation on autocast's lists rounds its float32 inputs to the
// lower format first (matrix products, attention) or computes in float32
// whatever its inputs. Its three switches (on, the format, its weight-cast
// cache) are per thread: a node's computation sets them on the thread that
// runs it. The cache itself is one for the whole process; tandem never fills
// it (every bf16 guard turns caching off), so nothing here clears it.
#include <ATen/autocast_mode.h>

extern "C" {

// The state of the switches, to be given back to `tandem_autocast_set`.
struct tandem_autocast_state {
  bool enabled;
  int dtype;  // a c10::ScalarType
  bool cache;
};

tandem_autocast_state tandem_autocast_get(bool cuda) {
  const auto device = cuda ? at::kCUDA : at::kCPU;
  return {at::autocast::is_autocast_enabled(device), static_cast<int>(at::autocast::get_autocast_dtype(device)),
          at::autocast::is_autocast_cache_enabled()};
}

void tandem_autocast_set(bool cuda, tandem_autocast_state state) {
  const auto device = cuda ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_dtype(device, static_cast<at::ScalarType>(state.dtype));
  at::autocast::set_autocast_enabled(device, state.enabled);
  at::autocast::set_autocast_cache_enabled(state.cache);
}

// bfloat16's ScalarType, for the Rust side.
int tandem_autocast_bf16() { return static_cast<int>(at::kBFloat16); }

}  // extern "C"
