// Activations f and their derivatives f' (docs/backprop.md, "y_j = f_j(z_j)" and "dz_j").
// Written as Eigen array expressions so that they vectorise; every formula is arranged
// so that no intermediate overflows for |z| up to 1e4 in float32 (exp only ever sees
// a non-positive argument). The reference (python/densa/reference/activations.py) writes the same
// formulas in NumPy, with their definitions in its docstrings.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

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

// Eigen 3.4's select() is evaluated coefficient by coefficient: handed an expression such
// as exp(z) it computes the scalar version element by element and branches (8-20x slower
// than the SIMD code on mixed signs). So each side is evaluated into an array first; a
// select between arrays and constants compiles to SIMD compares and blends. `tmp` is a
// scratch chunk of the same length as the output.

// out = exp(x) for x <= 0, exactly 0 below the smallest normal (see exp_nonpositive).
template <class X, class O>
void exp_nonpositive_to(const X& x, O& out) {
  using T = typename O::Scalar;
  const T lowest = std::log(std::numeric_limits<T>::min());
  out = x.exp();
  out = (x < lowest).select(O::PlainObject::Zero(out.size()), out);
}

// out = sigmoid(z) = 1 / (1 + e) for z >= 0, e / (1 + e) below, e = exp(-|z|) <= 1.
template <class Z, class O>
void sigmoid_to(const Z& z, O& out, O& tmp) {
  using T = typename O::Scalar;
  exp_nonpositive_to(-z.abs(), tmp);  // e
  out = T(1) / (T(1) + tmp);
  tmp = tmp / (T(1) + tmp);
  out = (z >= T(0)).select(out, tmp);
}

template <class ZA, class YA>
void activation_f_array(Activation a, const ZA& z, YA& y, YA& tmp) {
  using T = typename ZA::Scalar;
  switch (a) {
    case Activation::identity:
      y = z;
      break;
    case Activation::sigmoid:
      sigmoid_to(z, y, tmp);
      break;
    case Activation::tanh:
      y = z.tanh();
      break;
    case Activation::relu:
      y = z.max(T(0));
      break;
    case Activation::leaky_relu:
      tmp = T(kLeakySlope) * z;
      y = (z > T(0)).select(z, tmp);
      break;
    // elu: alpha * (exp(z) - 1) below zero; min(z, 0) keeps exp away from overflow.
    case Activation::elu:
      tmp = T(kEluAlpha) * z.min(T(0)).expm1();
      y = (z > T(0)).select(z, tmp);
      break;
    // softplus: log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)).
    case Activation::softplus:
      exp_nonpositive_to(-z.abs(), tmp);
      y = z.max(T(0)) + tmp.log1p();
      break;
    // gelu, tanh approximation: 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))).
    case Activation::gelu:
      y = T(0.5) * z * (T(1) + (T(kSqrt2OverPi) * (z + T(kGeluC) * z.cube())).tanh());
      break;
  }
}

template <class ZA, class DA>
void activation_df_array(Activation a, const ZA& z, DA& df, DA& tmp) {
  using T = typename ZA::Scalar;
  using Plain = typename DA::PlainObject;
  const Index n = df.size();
  switch (a) {
    case Activation::identity:
      df.setConstant(T(1));
      break;
    case Activation::sigmoid:
      sigmoid_to(z, df, tmp);
      df = df * (T(1) - df);  // s (1 - s)
      break;
    case Activation::tanh:
      df = T(1) - z.tanh().square();
      break;
    case Activation::relu:
      df = (z > T(0)).select(Plain::Ones(n), Plain::Zero(n));
      break;
    case Activation::leaky_relu:
      df = (z > T(0)).select(Plain::Ones(n), Plain::Constant(n, T(kLeakySlope)));
      break;
    case Activation::elu:
      exp_nonpositive_to(z.min(T(0)), tmp);
      tmp *= T(kEluAlpha);
      df = (z > T(0)).select(Plain::Ones(n), tmp);
      break;
    case Activation::softplus:
      sigmoid_to(z, df, tmp);
      break;
    case Activation::gelu: {
      // d/dz: 0.5 (1 + t) + 0.5 z (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 z^2)
      // with t = tanh(u). Where |z| is large, 1 - t^2 is exactly 0, so the product
      // stays finite (z^3 at 1e4 is 1e12, far from float32's limit).
      tmp = (T(kSqrt2OverPi) * (z + T(kGeluC) * z.cube())).tanh();  // t
      df = T(0.5) * (T(1) + tmp) + T(0.5) * z * (T(1) - tmp.square()) * T(kSqrt2OverPi) *
                                       (T(1) + T(3 * kGeluC) * z.square());
      break;
    }
  }
}

// identity, relu and leaky_relu take one compare, select or multiply per element, and
// each of those rounds the same in scalar code and in every SIMD width (the compiler may
// vectorise the loops below any way it likes). So they need no aligned chunks: they run
// straight on the caller's columns, which saves copying every value in and out of a
// chunk. The formulas are those of activation_f_array / activation_df_array, written
// per element (relu: Eigen's max(z, 0) is z < 0 ? 0 : z for every z, NaN and -0
// included).
inline bool is_exact(Activation a) {
  return a == Activation::identity || a == Activation::relu || a == Activation::leaky_relu;
}

template <Activation A, class T>
inline T exact_f(T z) {
  if constexpr (A == Activation::relu) return z < T(0) ? T(0) : z;
  if constexpr (A == Activation::leaky_relu) return z > T(0) ? z : T(kLeakySlope) * z;
  return z;
}

template <Activation A, class T>
inline T exact_df(T z) {
  if constexpr (A == Activation::relu) return z > T(0) ? T(1) : T(0);
  if constexpr (A == Activation::leaky_relu) return z > T(0) ? T(1) : T(kLeakySlope);
  return T(1);
}

// Calls body(std::integral_constant<Activation, A>) for the exact activation a, so that
// every loop is compiled, and vectorised, for one activation.
template <class Body>
void with_exact(Activation a, Body&& body) {
  if (a == Activation::relu) {
    body(std::integral_constant<Activation, Activation::relu>{});
  } else if (a == Activation::leaky_relu) {
    body(std::integral_constant<Activation, Activation::leaky_relu>{});
  } else {
    body(std::integral_constant<Activation, Activation::identity>{});
  }
}

// y = f(z + b) column by column, also storing z + b into z_out when b is given.
template <Activation A, class T>
void exact_forward(const T* b, const T* z, Index ldz, T* z_out, T* y, Index ldy, Index rows,
                   Index cols) {
  for (Index c = 0; c < cols; ++c) {
    const T* zc = z + c * ldz;
    T* yc = y + c * ldy;
    if (b) {
      T* oc = z_out + c * ldz;
      for (Index r = 0; r < rows; ++r) {
        const T v = zc[r] + b[r];
        oc[r] = v;
        yc[r] = exact_f<A>(v);
      }
    } else {
      for (Index r = 0; r < rows; ++r) yc[r] = exact_f<A>(zc[r]);
    }
  }
}

}  // namespace detail

// z += b, then y = f(z), for an exact activation (see detail::is_exact); y may alias z.
// The bias add is one rounding either way, so doing it in the same pass changes no bit.
template <class T>
void exact_bias_activation(Activation a, const ConstVectorRef<T>& b, BatchRef<T> z, BatchRef<T> y) {
  detail::with_exact(a, [&](auto act) {
    detail::exact_forward<decltype(act)::value, T>(b.data(), z.data(), z.outerStride(), z.data(),
                                                   y.data(), y.outerStride(), z.rows(), z.cols());
  });
}

// y = f(z), element-wise. y may alias z.
template <class T>
void activation_f(Activation a, const ConstBatchRef<T>& z, BatchRef<T> y) {
  if (detail::is_exact(a)) {
    detail::with_exact(a, [&](auto act) {
      detail::exact_forward<decltype(act)::value, T>(nullptr, z.data(), z.outerStride(), nullptr,
                                                     y.data(), y.outerStride(), z.rows(), z.cols());
    });
    return;
  }
  detail::for_aligned_chunks<T>(z, nullptr, y,
                                [a](const auto& zc, const auto&, auto& yc, auto& tmp) {
                                  detail::activation_f_array(a, zc, yc, tmp);  // y = f(z)
                                });
}

// df = f'(z), element-wise.
template <class T>
void activation_df(Activation a, const ConstBatchRef<T>& z, BatchRef<T> df) {
  detail::for_aligned_chunks<T>(z, nullptr, df,
                                [a](const auto& zc, const auto&, auto& dc, auto& tmp) {
                                  detail::activation_df_array(a, zc, dc, tmp);  // df = f'(z)
                                });
}

// dz = dy ⊙ f'(z), fused so that f'(z) never needs its own buffer.
template <class T>
void activation_backward(Activation a, const ConstBatchRef<T>& z, const ConstBatchRef<T>& dy,
                         BatchRef<T> dz) {
  if (detail::is_exact(a)) {
    detail::with_exact(a, [&](auto act) {
      constexpr Activation A = decltype(act)::value;
      for (Index c = 0; c < z.cols(); ++c) {
        const T* zc = z.data() + c * z.outerStride();
        const T* dyc = dy.data() + c * dy.outerStride();
        T* dzc = dz.data() + c * dz.outerStride();
        for (Index r = 0; r < z.rows(); ++r) dzc[r] = detail::exact_df<A>(zc[r]) * dyc[r];
      }
    });
    return;
  }
  const ConstBatchRef<T>* dyp = &dy;
  detail::for_aligned_chunks<T>(z, dyp, dz,
                                [a](const auto& zc, const auto& dyc, auto& dzc, auto& tmp) {
                                  detail::activation_df_array(a, zc, dzc, tmp);  // f'(z)
                                  dzc *= dyc;                                    // dz = dy ⊙ f'(z)
                                });
}

}  // namespace densa
