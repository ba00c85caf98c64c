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

#include "elementwise.hpp"
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
  DENSA_REQUIRE(grad.size() == theta.size(), "sgd: gradient and parameter sizes differ");
  const T lr = static_cast<T>(h.lr);
  const T mu = static_cast<T>(h.momentum);
  const T wd = static_cast<T>(h.weight_decay);
  const bool momentum = h.momentum > 0.0;
  if (momentum) {
    DENSA_REQUIRE(velocity.size() == theta.size(), "sgd: velocity and parameter sizes differ");
  }
  // Straight on the caller's arrays, no aligned chunks (unlike Adam below): these are
  // single multiplies and adds, which round the same in Eigen's SIMD body and scalar
  // ends (the build has -ffp-contract=off), so results do not depend on alignment; and
  // copying the parameters through chunks would double the memory traffic of a step.
  auto p = theta.array();
  auto g = grad.array();
  if (momentum) {
    auto v = velocity.array();
    if (h.weight_decay != 0.0) {
      v = mu * v + (g + wd * p);  // v = μ v + (dθ + wd θ)
      if (h.nesterov) {
        p -= lr * ((g + wd * p) + mu * v);  // θ -= lr (g + μ v)
      } else {
        p -= lr * v;  // θ -= lr v
      }
    } else {
      v = mu * v + g;  // v = μ v + dθ
      if (h.nesterov) {
        p -= lr * (g + mu * v);  // θ -= lr (g + μ v)
      } else {
        p -= lr * v;  // θ -= lr v
      }
    }
  } else if (h.weight_decay != 0.0) {
    p -= lr * (g + wd * p);  // θ -= lr (dθ + wd θ)
  } else {
    p -= lr * g;  // θ -= lr dθ
  }
}

// θ -= lr v: the rest of a momentum step (no Nesterov, no weight decay) once the
// velocity holds v = μ v + dθ (the trainer forms it inside the dW product). prescale
// then also leaves μ v in the velocity for the next product, in the same pass; without
// it the velocity is only read.
template <class T>
void sgd_apply_velocity(const SgdHyper& h, VectorRef<T> theta, VectorRef<T> velocity,
                        bool prescale) {
  DENSA_REQUIRE(velocity.size() == theta.size(), "sgd: velocity and parameter sizes differ");
  const T lr = static_cast<T>(h.lr);
  const T mu = static_cast<T>(h.momentum);
  // A plain loop, which the compiler vectorises; no fused multiply-add (the build has
  // -ffp-contract=off), so its scalar remainder rounds as its SIMD body does.
  T* __restrict p = theta.data();  // distinct arrays (the trainer's W and velocity)
  T* __restrict v = velocity.data();
  const Index n = theta.size();
  if (!prescale) {
    for (Index i = 0; i < n; ++i) p[i] -= lr * v[i];  // θ -= lr v
    return;
  }
  for (Index i = 0; i < n; ++i) {
    p[i] -= lr * v[i];  // θ -= lr v
    v[i] *= mu;         // μ v, for the next batch's product
  }
}

// `step` is the 1-based step count t after this update's increment.
template <class T>
void adam_step(const AdamHyper& h, long long step, VectorRef<T> theta,
               const ConstVectorRef<T>& grad, VectorRef<T> m, VectorRef<T> v) {
  DENSA_REQUIRE(grad.size() == theta.size() && m.size() == theta.size() && v.size() == theta.size(),
                "adam: gradient, moment and parameter sizes differ");
  DENSA_REQUIRE(step >= 1, "adam: step count must be at least 1");
  const double t = static_cast<double>(step);
  const T step_size = static_cast<T>(h.lr / (1.0 - std::pow(h.beta1, t)));
  const T sqrt_bc2 = static_cast<T>(std::sqrt(1.0 - std::pow(h.beta2, t)));
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2);
  const T one_b1 = static_cast<T>(1.0 - h.beta1), one_b2 = static_cast<T>(1.0 - h.beta2);
  const T eps = static_cast<T>(h.eps);
  const T decay = static_cast<T>(1.0 - h.lr * h.weight_decay);
  const bool decoupled = h.weight_decay != 0.0;
  // Evaluated on aligned chunks (elementwise.hpp): Eigen's packet sqrt is an
  // approximation, so every element must take the packet path, wherever it sits.
  detail::for_aligned_chunks_k<T, 4>(
      theta.size(), {theta.data(), const_cast<T*>(grad.data()), m.data(), v.data()},
      {true, false, true, true}, [&](auto& c) {
        auto& p = c[0];
        const auto& g = c[1];
        auto& mc = c[2];
        auto& vc = c[3];
        if (decoupled) p *= decay;           // θ ← θ · (1 − lr · weight_decay)
        mc = b1 * mc + one_b1 * g;           // m = β1 m + (1 − β1) dθ
        vc = b2 * vc + one_b2 * g.square();  // v = β2 v + (1 − β2) dθ²
        // θ ← θ − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε)
        p -= step_size * mc / (vc.sqrt() / sqrt_bc2 + eps);
      });
}

}  // namespace densa
