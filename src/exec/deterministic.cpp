// libtorch's deterministic mode, which tch does not expose.
//
// On a GPU several kernels (index and scatter additions, some reductions and
// convolutions, cuDNN's autotuned algorithms) sum in an order that changes
// from run to run, so one key could name different bytes on the same
// machine. The `cuda` profile asks libtorch for the deterministic kernel of
// every operation that has one. An operation without one still runs, with a
// warning from libtorch (warn_only): failing it would make the profile
// unusable for a model that needs it, and the warning says which.
#include <ATen/Context.h>

extern "C" {

void tandem_set_deterministic(bool on) {
  at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/true);
  at::globalContext().setDeterministicCuDNN(on);
  // cuDNN's benchmark mode times candidate algorithms and keeps the fastest:
  // which one wins is a race.
  at::globalContext().setBenchmarkCuDNN(false);
}

bool tandem_deterministic() {
  return at::globalContext().deterministicAlgorithms() && at::globalContext().deterministicCuDNN() &&
         !at::globalContext().benchmarkCuDNN();
}

}  // extern "C"
