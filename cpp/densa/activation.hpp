// Activations f and their derivatives f' (NOTATION.md: "activation.f" / "activation.df").
// Written as Eigen array expressions so that they vectorise; every formula is arranged
// so that no intermediate overflows for |z| up to 1e4 in float32 (exp only ever sees
// a non-positive argument). The reference (python/densa/reference.py) writes the same
// formulas in NumPy, with their definitions in its docstrings.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "elementwise.hpp"
#include "types.hpp"

namespace densa {

enum class Activation { identity, sigmoid, tanh, relu, leaky_relu, elu, softplus, gelu };

inline constexpr double kLeakySlope = 0.01;
inline constexpr double kEluAlpha = 1.0;
inline constexpr double kGeluC = 0.044715;
inline constexpr double kSqrt2OverPi = 0.7978845608028654;

inline Activation activation_from_name(const std::string& name) {
  if (name == "identity" || name == "linear") return Activation::identity;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "elu") return Activation::elu;
  if (name == "softplus") return Activation::softplus;
  if (name == "gelu") return Activation::gelu;
  throw std::invalid_argument(
      "activation: unknown name '" + name +
      "'; expected one of identity (linear), sigmoid, tanh, relu, leaky_relu, elu, "
      "softplus, gelu");
}

// exp(x) for x <= 0, and exactly 0 where exp(x) is below the smallest normal number:
// Eigen's SIMD exp clamps its argument (exp(-1e4) would come out as ~3e-39, not 0).
template <class X>
auto exp_nonpositive(const Eigen::ArrayBase<X>& x) {
  using T = typename X::Scalar;
  const T lowest = std::log(std::numeric_limits<T>::min());
  return (x < lowest).select(T(0), x.exp());
}

// sigmoid(z) = 1 / (1 + exp(-z)), computed from e = exp(-|z|) <= 1 on both sides.
template <class Z>
auto stable_sigmoid(const Eigen::ArrayBase<Z>& z) {
  using T = typename Z::Scalar;
  auto e = exp_nonpositive(-z.abs());
  return (z >= T(0)).select(T(1) / (T(1) + e), e / (T(1) + e));
}

namespace detail {

template <class ZA, class YA>
void activation_f_array(Activation a, const ZA& z, YA& y) {
  using T = typename ZA::Scalar;
  switch (a) {
    case Activation::identity: y = z; break;
    case Activation::sigmoid: y = stable_sigmoid(z); break;
    case Activation::tanh: y = z.tanh(); break;
    case Activation::relu: y = z.max(T(0)); break;
    case Activation::leaky_relu: y = (z > T(0)).select(z, T(kLeakySlope) * z); break;
    // elu: alpha * (exp(z) - 1) below zero; min(z, 0) keeps exp away from overflow.
    case Activation::elu: y = (z > T(0)).select(z, T(kEluAlpha) * z.min(T(0)).expm1()); break;
    // softplus: log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)).
    case Activation::softplus: y = z.max(T(0)) + exp_nonpositive(-z.abs()).log1p(); break;
    // gelu, tanh approximation: 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))).
    case Activation::gelu:
      y = T(0.5) * z * (T(1) + (T(kSqrt2OverPi) * (z + T(kGeluC) * z.cube())).tanh());
      break;
  }
}

template <class ZA, class DA>
void activation_df_array(Activation a, const ZA& z, DA& df) {
  using T = typename ZA::Scalar;
  switch (a) {
    case Activation::identity: df.setConstant(T(1)); break;
    case Activation::sigmoid: {
      df = stable_sigmoid(z);
      df = df * (T(1) - df);  // s (1 - s)
      break;
    }
    case Activation::tanh: df = T(1) - z.tanh().square(); break;
    case Activation::relu: df = (z > T(0)).select(T(1), T(0) * z); break;
    case Activation::leaky_relu: df = (z > T(0)).select(T(1), T(kLeakySlope) + T(0) * z); break;
    case Activation::elu: df = (z > T(0)).select(T(1), T(kEluAlpha) * exp_nonpositive(z.min(T(0)))); break;
    case Activation::softplus: df = stable_sigmoid(z); break;
    case Activation::gelu: {
      // d/dz: 0.5 (1 + t) + 0.5 z (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 z^2)
      // with t = tanh(u). Where |z| is large, 1 - t^2 is exactly 0, so the product
      // stays finite (z^3 at 1e4 is 1e12, far from float32's limit).
      auto t = (T(kSqrt2OverPi) * (z + T(kGeluC) * z.cube())).tanh();
      df = T(0.5) * (T(1) + t) + T(0.5) * z * (T(1) - t.square()) * T(kSqrt2OverPi) *
                                     (T(1) + T(3 * kGeluC) * z.square());
      break;
    }
  }
}

}  // namespace detail

// y = f(z), element-wise. y may alias z.
template <class T>
void activation_f(Activation a, const ConstBatchRef<T>& z, BatchRef<T> y) {
  detail::for_aligned_chunks<T>(z, nullptr, y, [a](const auto& zc, const auto&, auto& yc) {
    detail::activation_f_array(a, zc, yc);  // y = f(z)
  });
}

// df = f'(z), element-wise.
template <class T>
void activation_df(Activation a, const ConstBatchRef<T>& z, BatchRef<T> df) {
  detail::for_aligned_chunks<T>(z, nullptr, df, [a](const auto& zc, const auto&, auto& dc) {
    detail::activation_df_array(a, zc, dc);  // df = f'(z)
  });
}

// dz = dy ⊙ f'(z), fused so that f'(z) never needs its own buffer.
template <class T>
void activation_backward(Activation a, const ConstBatchRef<T>& z, const ConstBatchRef<T>& dy,
                         BatchRef<T> dz) {
  const ConstBatchRef<T>* dyp = &dy;
  detail::for_aligned_chunks<T>(z, dyp, dz, [a](const auto& zc, const auto& dyc, auto& dzc) {
    detail::activation_df_array(a, zc, dzc);  // f'(z)
    dzc *= dyc;                               // dz = dy ⊙ f'(z)
  });
}

}  // namespace densa
