// Parameter updates, in place on the arrays Python owns. One call updates one parameter
// tensor (W or b) viewed as a flat vector; the network calls it for every tensor.
//
// SGD (PyTorch's convention, dampening 0):
//   g = dθ + weight_decay · θ
//   v = momentum · v + g                          (only when momentum > 0)
//   step = g + momentum · v (nesterov) | v | g (no momentum)
//   θ ← θ − lr · step
// Adam with decoupled weight decay (AdamW; Loshchilov & Hutter), t counted from 1:
//   θ ← θ · (1 − lr · weight_decay)
//   m = β1 m + (1 − β1) dθ ;  v = β2 v + (1 − β2) dθ²
//   θ ← θ − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε)
// Scalar coefficients are formed in double, then rounded once to T, so that a float32
// update runs entirely in float32.
#pragma once

#include <cmath>

#include "types.hpp"

namespace densa {

struct SgdHyper {
  double lr = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
};

struct AdamHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// velocity may be empty (size 0) when momentum == 0.
template <class T>
void sgd_step(const SgdHyper& h, VectorRef<T> theta, const ConstVectorRef<T>& grad,
              VectorRef<T> velocity) {
  require(grad.size() == theta.size(), "sgd: gradient and parameter sizes differ");
  const T lr = static_cast<T>(h.lr);
  const T mu = static_cast<T>(h.momentum);
  const T wd = static_cast<T>(h.weight_decay);
  auto p = theta.array();
  auto g = grad.array();
  if (h.momentum > 0.0) {
    require(velocity.size() == theta.size(), "sgd: velocity and parameter sizes differ");
    auto v = velocity.array();
    if (h.weight_decay != 0.0) {
      v = mu * v + (g + wd * p);
      if (h.nesterov) {
        p -= lr * ((g + wd * p) + mu * v);
      } else {
        p -= lr * v;
      }
    } else {
      v = mu * v + g;
      if (h.nesterov) {
        p -= lr * (g + mu * v);
      } else {
        p -= lr * v;
      }
    }
  } else if (h.weight_decay != 0.0) {
    p -= lr * (g + wd * p);
  } else {
    p -= lr * g;
  }
}

// `step` is the 1-based step count t after this update's increment.
template <class T>
void adam_step(const AdamHyper& h, long long step, VectorRef<T> theta,
               const ConstVectorRef<T>& grad, VectorRef<T> m, VectorRef<T> v) {
  require(grad.size() == theta.size() && m.size() == theta.size() && v.size() == theta.size(),
          "adam: gradient, moment and parameter sizes differ");
  require(step >= 1, "adam: step count must be at least 1");
  const double t = static_cast<double>(step);
  const T step_size = static_cast<T>(h.lr / (1.0 - std::pow(h.beta1, t)));
  const T sqrt_bc2 = static_cast<T>(std::sqrt(1.0 - std::pow(h.beta2, t)));
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2);
  const T one_b1 = static_cast<T>(1.0 - h.beta1), one_b2 = static_cast<T>(1.0 - h.beta2);
  const T eps = static_cast<T>(h.eps);
  auto p = theta.array();
  auto g = grad.array();
  if (h.weight_decay != 0.0) p *= static_cast<T>(1.0 - h.lr * h.weight_decay);
  m.array() = b1 * m.array() + one_b1 * g;
  v.array() = b2 * v.array() + one_b2 * g.square();
  p -= step_size * m.array() / (v.array().sqrt() / sqrt_bc2 + eps);
}

}  // namespace densa
