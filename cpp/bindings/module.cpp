// The one file that knows Python. It checks what arrives, maps NumPy buffers as Eigen
// matrices without copying, releases the GIL while the core computes, and lets pybind11
// turn C++ exceptions into Python ones (std::invalid_argument -> ValueError,
// std::runtime_error -> RuntimeError, std::bad_alloc -> MemoryError). Arrays are read in
// place or refused (TypeError) by require_in_place below, never silently copied; the
// Python layer converts once, on purpose (python/densa/_checks.py). The one exception is
// Trainer.run's read-only inputs (X, targets, order), which no Python layer converts:
// read_only_batch and index_array below convert their layout once, as
// docs/robustness.md promises; the arrays a trainer updates are never converted.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "densa/activation.hpp"
#include "densa/dense.hpp"
#include "densa/finite.hpp"
#include "densa/float_mode.hpp"
#include "densa/gemm.hpp"
#include "densa/loss.hpp"
#include "densa/momentum_update.hpp"
#include "densa/network_forward.hpp"
#include "densa/optimizer.hpp"
#include "densa/orders.hpp"
#include "densa/parallel.hpp"
#include "densa/relu_backward.hpp"
#include "densa/snapshot.hpp"
#include "densa/targets.hpp"
#include "densa/trainer.hpp"

namespace py = pybind11;
using namespace densa;

// An argument that the function checks itself, with a message naming it: any object
// reaches it (pybind11 would otherwise refuse a mismatch with "incompatible function
// arguments", naming no argument). Signatures and stubs show it as Expected.
template <class Expected>
class Checked : public py::object {
  static bool any(PyObject*) { return true; }
  PYBIND11_OBJECT_DEFAULT(Checked, object, any)
};

template <class Expected>
struct pybind11::detail::handle_type_name<Checked<Expected>> {
  static constexpr auto name = make_caster<Expected>::name;
};

namespace {

template <class T>
using Array = py::array_t<T, py::array::c_style>;

// What the kernels read or write in place: an array of dtype T in native byte order,
// C-contiguous, whose address is a multiple of T's size (NumPy can make views at any
// byte offset; the kernels' loads assume T's alignment). Anything else is refused with
// TypeError, never copied here: densa.native then converts once, on purpose, or names
// the problem (python/densa/_checks.py). Checked field by field, which costs a few
// nanoseconds; pybind11's array_t conversion (dtype equivalence, PyArray_FromAny) took
// ~190 ns per argument, a tenth of a small layer's forward + backward from Python.
template <class T>
bool is_dtype(const py::dtype& dt) {
  static const int num = py::dtype::of<T>().num();
  const char order = dt.byteorder();
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  const char native = '>';
#else
  const char native = '<';
#endif
  return dt.num() == num && (order == '=' || order == '|' || order == native);
}

template <class T>
bool is_dtype(const py::array& a) {
  return is_dtype<T>(a.dtype());
}

template <class T>
bool reads_in_place(const py::array& a) {
  const bool contiguous = (a.flags() & py::array::c_style) != 0;
  const bool aligned = reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0;
  return is_dtype<T>(a) && contiguous && aligned;
}

template <class T>
void require_in_place(const py::array& a, const char* name) {
  if (reads_in_place<T>(a)) return;
  throw py::type_error(std::string(name) + ": expected a C-contiguous, aligned " +
                       (sizeof(T) == 4 ? "float32" : "float64") +
                       " array in native byte order (densa.native converts other arrays)");
}

template <class T>
void require_ndim(const py::array& a, py::ssize_t ndim, const char* name) {
  require_in_place<T>(a, name);
  DENSA_REQUIRE(a.ndim() == ndim, std::string(name) + " must be " + std::to_string(ndim) +
                                      "-D, got an array with ndim=" + std::to_string(a.ndim()));
}

// (N, m) C-contiguous -> column-major m x N: the same bytes, no copy.
template <class T>
ConstBatchMap<T> as_batch(const py::array& a, const char* name) {
  require_ndim<T>(a, 2, name);
  return ConstBatchMap<T>(static_cast<const T*>(a.data()), static_cast<Index>(a.shape(1)),
                          static_cast<Index>(a.shape(0)));
}

template <class T>
BatchMap<T> as_mutable_batch(Array<T>& a, const char* name) {
  require_ndim<T>(a, 2, name);
  return BatchMap<T>(a.mutable_data(), static_cast<Index>(a.shape(1)),
                     static_cast<Index>(a.shape(0)));
}

template <class T>
ConstWeightMap<T> as_weight(const py::array& a, const char* name) {
  require_ndim<T>(a, 2, name);
  return ConstWeightMap<T>(static_cast<const T*>(a.data()), static_cast<Index>(a.shape(0)),
                           static_cast<Index>(a.shape(1)));
}

template <class T>
ConstVectorMap<T> as_vector(const py::array& a, const char* name) {
  require_ndim<T>(a, 1, name);
  return ConstVectorMap<T>(static_cast<const T*>(a.data()), static_cast<Index>(a.shape(0)));
}

// Any parameter or state tensor, viewed flat, written in place.
template <class T>
VectorMap<T> as_mutable_flat(py::array& a, const char* name) {
  require_in_place<T>(a, name);
  DENSA_REQUIRE(a.writeable(), std::string(name) + " is read-only; densa updates it in place");
  return VectorMap<T>(static_cast<T*>(a.mutable_data()), static_cast<Index>(a.size()));
}

// Whether two of these arrays share memory. Each is C-contiguous, so its memory is one
// byte range, and two share memory exactly when their ranges meet (empty ones never do).
bool any_share_memory(const std::vector<const py::array*>& arrays) {
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> spans;  // [begin, end)
  spans.reserve(arrays.size());
  for (const py::array* a : arrays) {
    const auto begin = reinterpret_cast<std::uintptr_t>(a->data());
    const auto bytes = static_cast<std::uintptr_t>(a->nbytes());
    if (bytes > 0) spans.emplace_back(begin, begin + bytes);
  }
  std::sort(spans.begin(), spans.end());
  std::uintptr_t reach = 0;  // the furthest end so far
  for (size_t i = 0; i < spans.size(); ++i) {
    if (i > 0 && spans[i].first < reach) return true;
    reach = std::max(reach, spans[i].second);
  }
  return false;
}

template <class T>
ConstVectorMap<T> as_flat(const Array<T>& a, const char* name) {
  require_in_place<T>(a, name);
  return ConstVectorMap<T>(a.data(), static_cast<Index>(a.size()));
}

// A new, uninitialised C-contiguous array, from NumPy's constructor directly: pybind11's
// array_t(shape) also builds a shape and a strides std::vector per call. With dz in a
// scratch (below), this took ~0.23 us off a 1 x 1 layer's forward + backward from Python
// (1.84 -> 1.61 us; docs/performance.md, the eleventh session).
template <class T, std::size_t N>
Array<T> new_array(const std::array<Py_intptr_t, N>& dims) {
  auto& api = py::detail::npy_api::get();
  // A new reference to NumPy's own descriptor of T, which NewFromDescr steals.
  PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_format_descriptor<T>::value);
  if (!descr) throw py::error_already_set();
  PyObject* a = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, static_cast<int>(N),
                                          dims.data(), nullptr, nullptr, 0, nullptr);
  if (!a) throw py::error_already_set();
  return py::reinterpret_steal<Array<T>>(a);
}

template <class T>
Array<T> new_batch(Index n, Index m) {
  return new_array<T, 2>({static_cast<Py_intptr_t>(n), static_cast<Py_intptr_t>(m)});
}

// Room for a result Python does not ask for (dz, unless return_dz). Small ones go in a
// thread's scratch, grown to at most kScratchMax values and never shrunk, so repeated calls
// on small layers allocate nothing; larger ones in `fallback`, freed with it, so that no
// thread keeps a large buffer alive.
inline constexpr Index kScratchMax = Index{1} << 16;

template <class T>
BatchMap<T> scratch_batch(Index rows, Index cols, Matrix<T>& fallback) {
  if (rows * cols > kScratchMax) {
    fallback.resize(rows, cols);
    return BatchMap<T>(fallback.data(), rows, cols);
  }
  thread_local Vector<T> buf;
  if (buf.size() < rows * cols) buf.resize(rows * cols);
  return BatchMap<T>(buf.data(), rows, cols);
}

// The layer kernels let other Python threads run only when a product holds at least this
// many multiply-adds (~5 us on one core): releasing and taking back the GIL costs ~70 ns a
// call here, 1.5% of a small layer's forward + backward from Python, and frees too little
// time to matter below that (NumPy's ufunc loops hold it for small arrays likewise).
inline constexpr double kReleaseGilMacs = 1 << 18;

inline bool worth_releasing_gil(Index rows, Index cols, Index batch) {
  return static_cast<double>(rows) * static_cast<double>(cols) * static_cast<double>(batch) >=
         kReleaseGilMacs;
}

template <class T>
py::tuple dense_forward(const py::array& W_arr, const py::array& b_arr, const py::array& x_arr,
                        const std::string& activation) {
  const Activation a = activation_from_name(activation);
  auto W = as_weight<T>(W_arr, "W");
  auto b = as_vector<T>(b_arr, "b");
  auto x = as_batch<T>(x_arr, "x");
  // Empty batches are refused here and explained by densa.native's checked path.
  DENSA_REQUIRE(x.size() > 0, "dense_forward: x is empty");
  check_dense_shapes<T>(W, b.size(), x.rows(), x.cols(), "x");
  Array<T> z_arr = new_batch<T>(x.cols(), W.rows());
  Array<T> y_arr = new_batch<T>(x.cols(), W.rows());
  auto z = as_mutable_batch<T>(z_arr, "z");
  auto y = as_mutable_batch<T>(y_arr, "y");
  {
    std::optional<py::gil_scoped_release> release;
    if (worth_releasing_gil(W.rows(), W.cols(), x.cols())) release.emplace();
    densa::dense_forward<T>(W, b, x, a, z, y);
  }
  return py::make_tuple(z_arr, y_arr);
}

template <class T>
py::tuple dense_backward(const py::array& W_arr, const py::array& x_arr, const py::array& z_arr,
                         const py::array& dy_arr, const std::string& activation, bool return_dz) {
  const Activation a = activation_from_name(activation);
  auto W = as_weight<T>(W_arr, "W");
  auto x = as_batch<T>(x_arr, "x");
  auto z = as_batch<T>(z_arr, "z");
  auto dy = as_batch<T>(dy_arr, "dy");
  DENSA_REQUIRE(x.size() > 0, "dense_backward: x is empty");
  check_dense_shapes<T>(W, W.rows(), x.rows(), x.cols(), "x");
  std::optional<Array<T>> dz_arr;  // not an empty Array<T>: that would allocate one
  if (return_dz) dz_arr = new_batch<T>(x.cols(), W.rows());
  Array<T> dx_arr = new_batch<T>(x.cols(), W.cols());
  Array<T> dW_arr = new_array<T, 2>({W_arr.shape(0), W_arr.shape(1)});
  Array<T> db_arr = new_array<T, 1>({W_arr.shape(0)});
  Matrix<T> dz_large;
  BatchMap<T> dz = return_dz ? as_mutable_batch<T>(*dz_arr, "dz")
                             : scratch_batch<T>(W.rows(), x.cols(), dz_large);
  auto dx = as_mutable_batch<T>(dx_arr, "dx");
  WeightMap<T> dW(dW_arr.mutable_data(), W.rows(), W.cols());
  VectorMap<T> db(db_arr.mutable_data(), W.rows());
  {
    std::optional<py::gil_scoped_release> release;
    if (worth_releasing_gil(W.rows(), W.cols(), x.cols())) release.emplace();
    thread_local Vector<T> db_tmp;  // grown, never shrunk (dense.hpp)
    densa::dense_backward<T>(W, x, z, dy, a, dz, dW, db, db_tmp, dx);
  }
  if (return_dz) return py::make_tuple(dx_arr, dW_arr, db_arr, *dz_arr);
  return py::make_tuple(dx_arr, dW_arr, db_arr);
}

// y_K of X through every layer (network_forward.hpp), as a new (N, n_out) array: the
// forward passes of Network.predict in one call. Takes only what the kernels read in
// place (TypeError otherwise) and shapes that chain (ValueError); densa.native then falls
// back to the layer-by-layer path, which converts or names the problem.
template <class T>
Array<T> network_forward(const std::vector<py::array>& Ws, const std::vector<py::array>& bs,
                         const std::vector<std::string>& activations, const py::array& x_arr,
                         Index chunk) {
  DENSA_REQUIRE(Ws.size() == bs.size() && Ws.size() == activations.size(),
                "network_forward: Ws, bs and activations differ in length");
  std::vector<densa::ForwardLayer<T>> layers;
  layers.reserve(Ws.size());
  Index macs_per_sample = 0;
  for (size_t j = 0; j < Ws.size(); ++j) {
    layers.push_back(
        {as_weight<T>(Ws[j], "W"), as_vector<T>(bs[j], "b"), activation_from_name(activations[j])});
    macs_per_sample += layers.back().W.size();
  }
  auto x = as_batch<T>(x_arr, "x");
  DENSA_REQUIRE(x.size() > 0, "network_forward: x is empty");
  const Index n_out = densa::check_forward_shapes<T>(layers, x.rows(), x.cols());
  Array<T> out_arr = new_batch<T>(x.cols(), n_out);
  auto out = as_mutable_batch<T>(out_arr, "out");
  {
    std::optional<py::gil_scoped_release> release;
    if (worth_releasing_gil(macs_per_sample, 1, x.cols())) release.emplace();
    densa::network_forward<T>(layers, x, out, chunk);
  }
  return out_arr;
}

py::array network_forward_any(const std::vector<py::array>& Ws, const std::vector<py::array>& bs,
                              const std::vector<std::string>& activations, const py::array& x,
                              Index chunk) {
  if (is_dtype<double>(x)) return network_forward<double>(Ws, bs, activations, x, chunk);
  return network_forward<float>(Ws, bs, activations, x, chunk);  // refuses all but float32
}

// One entry point for both dtypes, chosen by W's: the float32 and float64 overloads that
// pybind11 would otherwise try in turn each cost a full argument conversion.
py::tuple dense_forward_any(const py::array& W, const py::array& b, const py::array& x,
                            const std::string& activation) {
  if (is_dtype<double>(W)) return dense_forward<double>(W, b, x, activation);
  return dense_forward<float>(W, b, x, activation);  // refuses anything but float32
}

py::tuple dense_backward_any(const py::array& W, const py::array& x, const py::array& z,
                             const py::array& dy, const std::string& activation, bool return_dz) {
  if (is_dtype<double>(W)) return dense_backward<double>(W, x, z, dy, activation, return_dz);
  return dense_backward<float>(W, x, z, dy, activation, return_dz);
}

template <class T>
double loss_forward(const std::string& name, const Array<T>& out_arr, const Array<T>& t_arr) {
  const Loss loss = loss_from_name(name);
  auto out = as_batch<T>(out_arr, "output");
  auto t = as_batch<T>(t_arr, "target");
  py::gil_scoped_release release;
  return static_cast<double>(loss_forward_backward<T>(loss, out, t, nullptr));
}

// SamplesInRows (the test hook _loss_backward_samples_in_rows): the arrays come
// transposed, (m, N) C-contiguous, which C++ sees as a row per sample (the hidden
// split's layout, loss.hpp); dy goes back the same way.
template <class T, bool SamplesInRows = false>
py::tuple loss_backward(const std::string& name, const Array<T>& out_arr, const Array<T>& t_arr) {
  const Loss loss = loss_from_name(name);
  auto out = as_batch<T>(out_arr, "output");
  auto t = as_batch<T>(t_arr, "target");
  if constexpr (SamplesInRows) {
    check_loss_shapes(out.cols(), out.rows(), t.cols(), t.rows());
  } else {
    check_loss_shapes(out.rows(), out.cols(), t.rows(), t.cols());
  }
  Array<T> dy_arr = new_batch<T>(out.cols(), out.rows());
  BatchRef<T> dy = as_mutable_batch<T>(dy_arr, "dy");
  T value;
  {
    py::gil_scoped_release release;
    value = loss_forward_backward<T, SamplesInRows>(loss, out, t, &dy);
  }
  return py::make_tuple(static_cast<double>(value), dy_arr);
}

template <class T>
void sgd_step(Array<T>& theta, const Array<T>& grad, Array<T>& velocity, double lr, double momentum,
              bool nesterov, double weight_decay) {
  DENSA_REQUIRE(grad.size() == theta.size(), "sgd_step: grad has " + std::to_string(grad.size()) +
                                                 " entries, the parameter " +
                                                 std::to_string(theta.size()));
  SgdHyper h{lr, momentum, nesterov, weight_decay};
  auto p = as_mutable_flat<T>(theta, "parameter");
  auto v = as_mutable_flat<T>(velocity, "velocity");
  auto g = as_flat<T>(grad, "grad");
  py::gil_scoped_release release;
  densa::sgd_step<T>(h, p, g, v);
}

template <class T>
void adam_step(Array<T>& theta, const Array<T>& grad, Array<T>& m, Array<T>& v, long long step,
               double lr, double beta1, double beta2, double eps, double weight_decay) {
  AdamHyper h{lr, beta1, beta2, eps, weight_decay};
  auto p = as_mutable_flat<T>(theta, "parameter");
  auto mm = as_mutable_flat<T>(m, "m");
  auto vv = as_mutable_flat<T>(v, "v");
  auto g = as_flat<T>(grad, "grad");
  py::gil_scoped_release release;
  densa::adam_step<T>(h, step, p, g, mm, vv);
}

// ----- Trainer arguments ----------------------------------------------------------------
// Everything a Trainer is given is checked here, with an exception naming the argument:
// pybind11's own "incompatible function arguments" does not say which one is wrong.

// "type: repr" of v, the repr cut to 60 characters, for messages.
std::string describe(py::handle v) {
  std::string r = py::repr(v).cast<std::string>();
  if (r.size() > 60) r = r.substr(0, 57) + "...";
  return py::type::handle_of(v).attr("__name__").cast<std::string>() + ": " + r;
}

bool is_native_order(const py::dtype& dt) {
  const char order = dt.byteorder();
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  const char native = '>';
#else
  const char native = '<';
#endif
  return order == '=' || order == '|' || order == native;
}

// An integer argument of run / run_epochs (a Python int or a NumPy integer, not a bool),
// clamped to int64: beyond it no run has that many batches (the trainer then runs
// nothing, or refuses the batch size).
Index index_arg(py::handle v, const char* call, const char* name, bool non_negative) {
  if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr())) {
    throw py::type_error(std::string(call) + ": " + name + " must be an integer, got " +
                         describe(v));
  }
  const Py_ssize_t n = PyNumber_AsSsize_t(v.ptr(), nullptr);  // clamps, never overflows
  if (n == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (non_negative && n < 0) {
    throw py::value_error(std::string(call) + ": " + name + " must be >= 0, got " +
                          std::to_string(n));
  }
  return static_cast<Index>(n);
}

// A C-contiguous, aligned copy of a in native byte order and dtype dt (numpy.require).
py::array converted(const py::array& a, const py::dtype& dt) {
  return py::module_::import("numpy").attr("require")(a, dt,
                                                      py::make_tuple("C_CONTIGUOUS", "ALIGNED"));
}

// X or targets of Trainer.run: a 2-D array of the trainer's dtype (any other dtype is
// refused: a kernel never guesses the precision). Read only, so a layout the kernels
// cannot read in place (Fortran order, strided, unaligned, byte-swapped) is converted
// once, per docs/robustness.md; the caller's array is never written either way.
template <class T>
py::array read_only_batch(py::handle h, const char* call, const char* name) {
  const char* dtype = sizeof(T) == 4 ? "float32" : "float64";
  if (!py::isinstance<py::array>(h)) {
    throw py::type_error(std::string(call) + ": " + name + " must be a 2-D " + dtype +
                         " NumPy array (the trainer's dtype), got " + describe(h));
  }
  auto a = py::reinterpret_borrow<py::array>(h);
  const py::dtype dt = a.dtype();
  if (dt.kind() != 'f' || dt.itemsize() != static_cast<py::ssize_t>(sizeof(T))) {
    throw py::type_error(std::string(call) + ": " + name + " has dtype " +
                         py::str(dt).cast<std::string>() + " but this trainer computes in " +
                         dtype + ", its parameters' dtype (convert explicitly, e.g. " + name +
                         ".astype(np." + dtype + "))");
  }
  if (a.ndim() != 2) {
    throw py::value_error(std::string(call) + ": " + name + " must be 2-D, got shape " +
                          py::str(a.attr("shape")).cast<std::string>());
  }
  const bool aligned = reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0;
  if (is_dtype<T>(a) && (a.flags() & py::array::c_style) && aligned) return a;
  return converted(a, py::dtype::of<T>());
}

// Epoch seeds as sample_orders and Trainer.fit read them in place: a 1-D, C-contiguous,
// aligned uint64 array (anything else is refused, never converted).
bool is_seed_array(py::handle h) {
  if (!py::isinstance<py::array>(h)) return false;
  const auto a = py::reinterpret_borrow<py::array>(h);
  return a.ndim() == 1 && a.dtype().is(py::dtype::of<std::uint64_t>()) &&
         (a.flags() & py::array::c_style) != 0 &&
         reinterpret_cast<std::uintptr_t>(a.data()) % alignof(std::uint64_t) == 0;
}

// order (ndim 1, Trainer.run) or orders (ndim 2, Trainer.run_epochs): sample indices.
// Refused, as the reference trainer refuses them: not an array of integers, or of
// another ndim (run: TypeError; run_epochs: ValueError). Read only, so another integer
// dtype or layout (strided, unaligned, byte-swapped) is converted once to the int64
// C++ reads; the values are checked by the trainer.
py::array index_array(py::handle h, int ndim, const char* call) {
  const bool is_array = py::isinstance<py::array>(h);
  const auto a = is_array ? py::reinterpret_borrow<py::array>(h) : py::array();
  const py::dtype dt = is_array ? a.dtype() : py::dtype::of<std::int64_t>();
  const char kind = dt.kind();
  if (ndim == 1 && (!is_array || a.ndim() != 1 || (kind != 'i' && kind != 'u'))) {
    throw py::type_error(
        std::string(call) + ": order must be a 1-D array of integer sample indices, got " +
        (is_array ? "an array of dtype " + py::str(dt).cast<std::string>() + " and shape " +
                        py::str(a.attr("shape")).cast<std::string>()
                  : describe(h)));
  }
  if (ndim == 2 && (!is_array || a.ndim() != 2 || a.shape(1) == 0)) {
    throw py::value_error(
        std::string(call) + ": orders must be 2-D (epochs, samples) with samples > 0, got " +
        (is_array ? "shape " + py::str(a.attr("shape")).cast<std::string>() : describe(h)));
  }
  if (kind != 'i' && kind != 'u') {  // run_epochs' orders; run's order is refused above
    throw py::type_error(std::string(call) +
                         ": orders must be an array of integer sample indices, got dtype " +
                         py::str(dt).cast<std::string>());
  }
  const bool aligned = reinterpret_cast<std::uintptr_t>(a.data()) % alignof(std::int64_t) == 0;
  if (kind == 'i' && dt.itemsize() == 8 && is_native_order(dt) &&
      (a.flags() & py::array::c_style) && aligned) {
    return a;
  }
  // Another integer dtype (int32, uint64, ...) converts as the reference reads it; a
  // uint64 beyond int64 wraps negative, and the trainer refuses it as out of range.
  return converted(a, py::dtype::of<std::int64_t>());
}

// Adam's step count t: the caller's own one-entry int64 array, which the trainer
// increments in place. Anything else is refused: a converted copy (of an int32 array,
// a list) would count instead, and the caller's t would never move.
std::int64_t* step_array(py::handle h, py::object& keep) {
  const std::string want = "Trainer: step must be a writable int64 array of one entry";
  if (!py::isinstance<py::array>(h)) throw py::type_error(want + ", got " + describe(h));
  auto a = py::reinterpret_borrow<py::array>(h);
  const py::dtype dt = a.dtype();
  const std::string shape = py::str(a.attr("shape")).cast<std::string>();
  if (dt.kind() != 'i' || dt.itemsize() != 8 || !is_native_order(dt)) {
    throw py::type_error(want + " (updated in place), got an array of dtype " +
                         py::str(dt).cast<std::string>());
  }
  if (a.ndim() != 1 || a.size() != 1) {
    throw py::value_error(want + ", got an array of shape " + shape);
  }
  const bool aligned = reinterpret_cast<std::uintptr_t>(a.data()) % alignof(std::int64_t) == 0;
  if (!aligned) throw py::type_error(want + " (updated in place), got an unaligned array");
  if (!a.writeable()) throw py::value_error(want + " (updated in place), got a read-only array");
  keep = a;
  return static_cast<std::int64_t*>(a.mutable_data());
}

// The optimizer's hyperparameters, refused as densa.optimizers refuses them, with the
// same exception types and wording: the Trainer is reachable without those classes
// (densa.native.Trainer), and a NaN learning rate or a momentum of 1 would otherwise
// train to nonsense without a word. hyper is anything dict() takes, like the reference
// trainer's; keys other than the optimizer's are ignored, as there.
class HyperReader {
 public:
  HyperReader(py::handle hyper, const std::string& optimizer, std::vector<const char*> keys)
      : keys_(std::move(keys)) {
    std::string expected;
    for (const char* k : keys_) expected += (expected.empty() ? "" : ", ") + std::string(k);
    expected = optimizer + " takes " + expected;
    try {
      dict_ = py::dict(py::reinterpret_borrow<py::object>(hyper));
    } catch (py::error_already_set&) {
      throw py::type_error("Trainer: hyper must be a dict of the optimizer's hyperparameters (" +
                           expected + "), got " + describe(hyper));
    }
    std::string missing;
    for (const char* k : keys_) {
      if (!dict_.contains(k)) missing += (missing.empty() ? "'" : ", '") + std::string(k) + "'";
    }
    if (!missing.empty()) {
      throw py::key_error("Trainer: hyper has no " + missing + " (" + expected + ")");
    }
  }

  // A real number (int, float, NumPy integer or floating, or a 0-d array of one; not a
  // bool), or TypeError: densa.optimizers' rule, and densa._checks' for the kernels.
  // `given`: the value as the messages print it, str() of what the caller passed.
  struct Number {
    double value;
    std::string given;
  };

  Number number(const char* key) const {
    py::object v = dict_[key];
    if (py::isinstance<py::array>(v) && py::reinterpret_borrow<py::array>(v).ndim() == 0) {
      v = v[py::tuple()];  // the NumPy scalar it holds (a bool is refused below)
    }
    const auto np = py::module_::import("numpy");
    const bool ok = !PyBool_Check(v.ptr()) && (PyFloat_Check(v.ptr()) || PyLong_Check(v.ptr()) ||
                                               py::isinstance(v, np.attr("floating")) ||
                                               py::isinstance(v, np.attr("integer")));
    if (!ok) {
      throw py::type_error(std::string("Trainer: ") + key + " must be a number, got " +
                           describe(v));
    }
    double x = PyFloat_AsDouble(v.ptr());
    if (x == -1.0 && PyErr_Occurred()) {
      if (!PyErr_ExceptionMatches(PyExc_OverflowError)) throw py::error_already_set();
      PyErr_Clear();  // an int beyond double's range: inf, refused as such
      x = INFINITY;
    }
    return {x, py::str(v).cast<std::string>()};
  }

  // lr: finite, > 0.
  double rate(const char* key) const {
    const Number n = number(key);
    if (!std::isfinite(n.value) || n.value <= 0.0) {
      fail(std::string(key) + " must be a finite number > 0, got " + n.given);
    }
    return n.value;
  }

  // momentum, beta1, beta2: in [0, 1).
  double fraction(const char* key) const {
    const Number n = number(key);
    if (!(std::isfinite(n.value) && n.value >= 0.0 && n.value < 1.0)) {
      fail(std::string(key) + " must lie in [0.0, 1.0), got " + n.given);
    }
    return n.value;
  }

  // weight_decay, eps: finite, >= 0.
  double non_negative(const char* key) const {
    const Number n = number(key);
    if (!(std::isfinite(n.value) && n.value >= 0.0)) {
      fail(std::string(key) + " must be a finite number >= 0.0, got " + n.given);
    }
    return n.value;
  }

  // l2 (optional: absent is 0, densa.SGD's and densa.Adam's default), as non_negative.
  double optional_non_negative(const char* key) const {
    return dict_.contains(key) ? non_negative(key) : 0.0;
  }

  // nesterov: True or False (a Python or NumPy bool).
  bool flag(const char* key) const {
    const py::object v = dict_[key];
    if (!PyBool_Check(v.ptr()) && !py::isinstance(v, py::module_::import("numpy").attr("bool_"))) {
      throw py::type_error(std::string("Trainer: ") + key + " must be True or False, got " +
                           py::repr(v).cast<std::string>());
    }
    return PyObject_IsTrue(v.ptr()) == 1;
  }

 private:
  [[noreturn]] static void fail(const std::string& message) {
    throw py::value_error("Trainer: " + message);
  }

  std::vector<const char*> keys_;
  py::dict dict_;
};

template <class T>
std::uintptr_t mapped_address(const Array<T>& x) {
  return reinterpret_cast<std::uintptr_t>(as_batch<T>(x, "x").data());
}

using Orders = py::array_t<std::int64_t, py::array::c_style>;

// Python face of densa::Trainer<T>. It keeps a reference to every array it points into,
// so that the memory outlives the trainer whatever Python does with its own names.
template <class T>
class PyTrainer {
 public:
  PyTrainer(std::vector<py::array> Ws, std::vector<py::array> bs,
            const std::vector<std::string>& activations, const std::string& loss,
            const std::string& optimizer, const Checked<py::dict>& hyper,
            std::vector<std::vector<py::array>> state_W,
            std::vector<std::vector<py::array>> state_b, const py::object& step, Index max_batch) {
    // Every array given, read or not, as pybind11's array_t<T, c_style> took them before
    // (dtype T in native byte order, C-contiguous; never converted). Taken here as plain
    // arrays and tested field by field: array_t's conversion (PyArray_FromAny per array)
    // cost a W4 fit 0.6-1.3 ms of its ~6 ms right after an idle pause, and the
    // constructor ~0.04 ms warm (docs/performance.md, the twentieth session).
    const auto c_array = [](const py::array& a) {
      return is_dtype<T>(a) && (a.flags() & py::array::c_style) != 0;
    };
    bool all_c =
        std::all_of(Ws.begin(), Ws.end(), c_array) && std::all_of(bs.begin(), bs.end(), c_array);
    for (const auto* states : {&state_W, &state_b})
      for (const std::vector<py::array>& layer_states : *states)
        all_c = all_c && std::all_of(layer_states.begin(), layer_states.end(), c_array);
    if (!all_c) {
      throw py::type_error(std::string("Trainer: expected C-contiguous ") +
                           (sizeof(T) == 4 ? "float32" : "float64") +
                           " arrays in native byte order (densa.native names the one that is not)");
    }
    const size_t K = Ws.size();
    DENSA_REQUIRE(
        K > 0 && bs.size() == K && activations.size() == K && state_W.size() == K &&
            state_b.size() == K,
        "Trainer: Ws, bs, activations and optimizer states must have one entry per layer");
    OptimizerConfig opt;
    const size_t n_state = optimizer == "sgd" ? 1 : optimizer == "adam" ? 2 : 0;
    DENSA_REQUIRE(n_state > 0,
                  "Trainer: unknown optimizer '" + optimizer + "' (expected sgd or adam)");
    // In densa.optimizers' order: lr, then the others as its constructors check them.
    if (optimizer == "sgd") {
      const HyperReader h(hyper, optimizer, {"lr", "momentum", "nesterov", "weight_decay"});
      opt.kind = OptimizerKind::sgd;
      opt.sgd.lr = h.rate("lr");
      opt.sgd.momentum = h.fraction("momentum");
      opt.sgd.nesterov = h.flag("nesterov");
      opt.sgd.weight_decay = h.non_negative("weight_decay");
      opt.l2 = h.optional_non_negative("l2");
    } else {
      const HyperReader h(hyper, optimizer, {"lr", "beta1", "beta2", "eps", "weight_decay"});
      opt.kind = OptimizerKind::adam;
      opt.adam.lr = h.rate("lr");
      opt.adam.beta1 = h.fraction("beta1");
      opt.adam.beta2 = h.fraction("beta2");
      opt.adam.eps = h.non_negative("eps");
      if (opt.adam.eps == 0.0) {
        throw py::value_error("Trainer: eps must be > 0 (it keeps the update finite where v = 0)");
      }
      opt.adam.weight_decay = h.non_negative("weight_decay");
      opt.l2 = h.optional_non_negative("l2");
      opt.step = step_array(step, step_);
    }
    const bool need_state = opt.kind == OptimizerKind::adam || opt.sgd.momentum > 0.0;
    std::vector<LayerSlot<T>> slots(K);
    std::vector<const py::array*> in_place;  // every array the trainer writes
    for (size_t j = 0; j < K; ++j) {
      const std::string where = "Trainer: layer " + std::to_string(j) + ": ";
      DENSA_REQUIRE(Ws[j].ndim() == 2 && bs[j].ndim() == 1 && bs[j].shape(0) == Ws[j].shape(0),
                    where + "W must be 2-D and b 1-D with W.shape[0] entries");
      LayerSlot<T>& s = slots[j];
      s.W = as_mutable_flat<T>(Ws[j], "W").data();
      s.b = as_mutable_flat<T>(bs[j], "b").data();
      in_place.insert(in_place.end(), {&Ws[j], &bs[j]});
      s.n_out = static_cast<Index>(Ws[j].shape(0));
      s.n_in = static_cast<Index>(Ws[j].shape(1));
      s.activation = activation_from_name(activations[j]);
      if (need_state) {
        DENSA_REQUIRE(state_W[j].size() >= n_state && state_b[j].size() >= n_state,
                      where + "missing optimizer state arrays");
        for (size_t k = 0; k < n_state; ++k) {
          DENSA_REQUIRE(
              state_W[j][k].size() == Ws[j].size() && state_b[j][k].size() == bs[j].size(),
              where + "optimizer state has the wrong size");
          s.state_W[k] = as_mutable_flat<T>(state_W[j][k], "optimizer state").data();
          s.state_b[k] = as_mutable_flat<T>(state_b[j][k], "optimizer state").data();
          in_place.insert(in_place.end(), {&state_W[j][k], &state_b[j][k]});
        }
      }
    }
    // No two arrays written in place may share memory: updated as one, they would train
    // wrong numbers without a sign. Refused here, where it costs a sort of a few byte
    // ranges; densa.native then names the pair. (In Python, reading each array's base
    // and flags cost a fit ~10 attribute reads per array right after an idle pause.)
    if (any_share_memory(in_place)) {
      throw py::value_error("Trainer: in-place arrays share memory (densa.native names them)");
    }
    // What fit's snapshot copies (the arrays written, and Adam's step) and what its
    // finite checks read (the parameters, then every optimizer state array given, used
    // or not, as LastFinite checks them).
    for (const py::array* a : in_place) {
      written_.push_back(ByteSpan{const_cast<void*>(a->data()), static_cast<size_t>(a->nbytes())});
    }
    if (opt.step != nullptr) written_.push_back(ByteSpan{opt.step, sizeof(std::int64_t)});
    for (size_t j = 0; j < K; ++j) {
      for (const py::array* a : {&Ws[j], &bs[j]}) params_.push_back(flat_of(*a));
    }
    for (const auto* states : {&state_W, &state_b})
      for (const std::vector<py::array>& layer_states : *states)
        for (const py::array& a : layer_states) state_.push_back(flat_of(a));
    keep_ = py::make_tuple(Ws, bs, state_W, state_b);
    n_layers_ = slots.size();
    trainer_ = std::make_unique<Trainer<T>>(std::move(slots), loss_from_name(loss), opt, max_batch);
  }

  // Returns (loss_sum, samples, batches, diverged, diverged_batch, penalty_sum), as
  // RunResult (parameters.hpp) defines them. Raises RuntimeError while another thread runs
  // this trainer (trainer.hpp, RunGuard).
  py::tuple run(const Checked<Array<T>>& X_obj, const Checked<Array<T>>& T_obj,
                const Checked<Orders>& order_obj, const Checked<Index>& batch_size_obj,
                const Checked<Index>& first_batch_obj, const Checked<Index>& n_batches_obj) {
    const char* call = "Trainer.run";
    // Converted copies, if any, live here until the run returns.
    const py::array X_arr = read_only_batch<T>(X_obj, call, "X");
    const py::array T_arr = read_only_batch<T>(T_obj, call, "targets");
    const py::array order = index_array(order_obj, 1, call);
    const Index batch_size = index_arg(batch_size_obj, call, "batch_size", false);
    const Index first_batch = index_arg(first_batch_obj, call, "first_batch", true);
    const Index n_batches = index_arg(n_batches_obj, call, "n_batches", true);
    auto X = as_batch<T>(X_arr, "X");
    auto Tg = as_batch<T>(T_arr, "targets");
    const auto* idx = static_cast<const std::int64_t*>(order.data());
    RunResult r;
    {
      py::gil_scoped_release release;
      r = trainer_->run(X, Tg, idx, static_cast<Index>(order.size()), batch_size, first_batch,
                        n_batches);
    }
    return py::make_tuple(r.loss_sum, r.samples, r.batches, r.diverged, r.diverged_batch,
                          r.penalty_sum);
  }

  // A whole plain fit in one crossing (densa.native.fit_once; Network.fit takes it when
  // nothing happens between epochs and the fit is predicted to last under
  // densa._pacing.CHUNK_SECONDS): LastFinite's first capture, each epoch's order from its
  // seed (sample_orders; None: 0 .. N-1), the epochs (run_epochs), and the end's check
  // of the parameters, putting the capture back when they are not finite. Each completed
  // epoch is appended to loss_out (its mean loss plus the penalty), penalty_out and
  // seconds_out, History's lists, before the call returns: no Python runs between the
  // training and its record, so a KeyboardInterrupt cannot separate them.
  // Everything is checked before anything trains: a TypeError or ValueError means
  // nothing changed (Network.fit then takes its ordinary path, which names the problem).
  // Returns (diverged, diverged_batch, params_finite, restored): params_finite as they
  // were at the end, before any restore; restored when the capture was put back.
  py::tuple fit(const Checked<Array<T>>& X_obj, const Checked<Array<T>>& T_obj,
                const py::object& seeds, const Checked<Index>& n_epochs_obj,
                const Checked<Index>& batch_size_obj, const Checked<py::list>& loss_out,
                const Checked<py::list>& penalty_out, const Checked<py::list>& seconds_out) {
    const char* call = "Trainer.fit";
    const py::array X_arr = read_only_batch<T>(X_obj, call, "X");
    const py::array T_arr = read_only_batch<T>(T_obj, call, "targets");
    const Index n_epochs = index_arg(n_epochs_obj, call, "n_epochs", true);
    const Index batch_size = index_arg(batch_size_obj, call, "batch_size", false);
    for (const py::object* out : {&loss_out, &penalty_out, &seconds_out}) {
      if (!PyList_CheckExact(out->ptr())) {
        throw py::type_error(std::string(call) + ": the history outputs must be lists, got " +
                             describe(*out));
      }
    }
    auto X = as_batch<T>(X_arr, "X");
    auto Tg = as_batch<T>(T_arr, "targets");
    const Index n = X.cols();
    DENSA_REQUIRE(n > 0, "Trainer.fit: X has no samples");
    trainer_->check_fit(X, Tg, batch_size);
    const std::uint64_t* seed = nullptr;
    if (!seeds.is_none()) {
      if (!is_seed_array(seeds)) {
        throw py::type_error(std::string(call) +
                             ": seeds must be None or a 1-D C-contiguous, aligned uint64 array");
      }
      const auto s = py::reinterpret_borrow<py::array>(seeds);
      DENSA_REQUIRE(static_cast<Index>(s.shape(0)) == n_epochs,
                    "Trainer.fit: seeds must hold one seed per epoch");
      seed = static_cast<const std::uint64_t*>(s.data());
    }
    std::vector<std::int64_t> orders(static_cast<size_t>(n_epochs * n));
    Snapshot snapshot;
    EpochsResult r;
    bool params_finite = true;
    {
      py::gil_scoped_release release;
      for (Index e = 0; e < n_epochs; ++e) {
        std::int64_t* order = orders.data() + e * n;
        if (seed != nullptr) {
          densa::sample_order(seed[e], n, order);
        } else {
          for (Index i = 0; i < n; ++i) order[i] = i;
        }
      }
      // LastFinite.capture((0, 0)): a copy only when the parameters and every state
      // array are finite.
      if (all_finite_spans(params_) && all_finite_spans(state_)) snapshot.save(written_);
      if (n_epochs > 0) {
        r = trainer_->run_epochs(X, Tg, orders.data(), n_epochs, n, batch_size);
      }
      params_finite = all_finite_spans(params_);
      if (!params_finite && snapshot.saved()) snapshot.restore();
    }
    for (size_t e = 0; e < r.loss_mean.size(); ++e) {
      // The same double sum as Python's (History.loss includes the l2 penalty).
      if (PyList_Append(loss_out.ptr(), py::float_(r.loss_mean[e] + r.penalty_mean[e]).ptr()) ||
          PyList_Append(penalty_out.ptr(), py::float_(r.penalty_mean[e]).ptr()) ||
          PyList_Append(seconds_out.ptr(), py::float_(r.seconds[e]).ptr())) {
        throw py::error_already_set();
      }
    }
    return py::make_tuple(r.diverged, r.diverged_batch, params_finite,
                          !params_finite && snapshot.saved());
  }

  bool splits_hidden_layer() const { return trainer_->splits_hidden_layer(); }
  bool splits_first_layer() const { return trainer_->splits_first_layer(); }

  std::vector<bool> momentum_kernel_layers() const {
    std::vector<bool> out(n_layers_);
    for (size_t j = 0; j < n_layers_; ++j) out[j] = trainer_->uses_momentum_kernel(j);
    return out;
  }

  // Returns (loss_means, seconds, diverged, diverged_batch, penalty_means): one entry per
  // completed epoch in each list (EpochsResult); orders is (n_epochs, N), one row per
  // epoch.
  py::tuple run_epochs(const Checked<Array<T>>& X_obj, const Checked<Array<T>>& T_obj,
                       const Checked<Orders>& orders_obj, const Checked<Index>& batch_size_obj) {
    const char* call = "Trainer.run_epochs";
    const py::array X_arr = read_only_batch<T>(X_obj, call, "X");
    const py::array T_arr = read_only_batch<T>(T_obj, call, "targets");
    const py::array orders = index_array(orders_obj, 2, call);
    const Index batch_size = index_arg(batch_size_obj, call, "batch_size", false);
    auto X = as_batch<T>(X_arr, "X");
    auto Tg = as_batch<T>(T_arr, "targets");
    const auto* idx = static_cast<const std::int64_t*>(orders.data());
    EpochsResult r;
    {
      py::gil_scoped_release release;
      r = trainer_->run_epochs(X, Tg, idx, static_cast<Index>(orders.shape(0)),
                               static_cast<Index>(orders.shape(1)), batch_size);
    }
    return py::make_tuple(r.loss_mean, r.seconds, r.diverged, r.diverged_batch, r.penalty_mean);
  }

 private:
  struct Flat {
    const T* data;
    Index size;
  };
  static Flat flat_of(const py::array& a) {
    return Flat{static_cast<const T*>(a.data()), static_cast<Index>(a.size())};
  }
  static bool all_finite_spans(const std::vector<Flat>& arrays) {
    return std::all_of(arrays.begin(), arrays.end(),
                       [](const Flat& a) { return densa::all_finite(a.data, a.size); });
  }

  std::unique_ptr<Trainer<T>> trainer_;
  std::vector<ByteSpan> written_;  // every array the trainer writes, and Adam's step
  std::vector<Flat> params_;       // W and b of each layer
  std::vector<Flat> state_;        // every optimizer state array given
  size_t n_layers_ = 0;
  py::object keep_;
  py::object step_;  // Adam's step array, which opt.step points into
};

template <class T>
void bind_trainer(py::module_& m) {
  const std::string name = sizeof(T) == 4 ? "Trainer_float32" : "Trainer_float64";
  py::class_<PyTrainer<T>>(m, name.c_str())
      .def(py::init<std::vector<py::array>, std::vector<py::array>, const std::vector<std::string>&,
                    const std::string&, const std::string&, const Checked<py::dict>&,
                    std::vector<std::vector<py::array>>, std::vector<std::vector<py::array>>,
                    const py::object&, Index>(),
           // noconvert reaches into the lists: a converted copy would be trained instead
           // of the caller's parameters.
           py::arg("Ws").noconvert(), py::arg("bs").noconvert(), py::arg("activations"),
           py::arg("loss"), py::arg("optimizer"), py::arg("hyper"), py::arg("state_W").noconvert(),
           py::arg("state_b").noconvert(), py::arg("step"), py::arg("max_batch"))
      // run's and run_epochs' arguments are checked by PyTrainer itself, which names the
      // one that is wrong (read_only_batch, index_array, index_arg).
      // (noconvert here only makes the stubs say NDArray, as for arrays read in place.)
      .def("run", &PyTrainer<T>::run, py::arg("X").noconvert(), py::arg("targets").noconvert(),
           py::arg("order").noconvert(), py::arg("batch_size"), py::arg("first_batch"),
           py::arg("n_batches"))
      .def("run_epochs", &PyTrainer<T>::run_epochs, py::arg("X").noconvert(),
           py::arg("targets").noconvert(), py::arg("orders").noconvert(), py::arg("batch_size"))
      .def("fit", &PyTrainer<T>::fit, py::arg("X").noconvert(), py::arg("targets").noconvert(),
           py::arg("seeds").none(true), py::arg("n_epochs"), py::arg("batch_size"),
           py::arg("loss_out"), py::arg("penalty_out"), py::arg("seconds_out"))
      .def_property_readonly("splits_hidden_layer", &PyTrainer<T>::splits_hidden_layer,
                             "Whether this network trains with its hidden units split between "
                             "two threads (hidden_split.hpp).")
      .def_property_readonly("splits_first_layer", &PyTrainer<T>::splits_first_layer,
                             "Whether this network trains with its first layer's units split "
                             "between two threads (first_layer_split.hpp).")
      .def_property_readonly("momentum_kernel_layers", &PyTrainer<T>::momentum_kernel_layers,
                             "Per layer, whether W's momentum steps run on densa's kernel "
                             "(momentum_update.hpp) rather than the BLAS and a separate pass.");
}

template <class T>
void bind_dtype(py::module_& m) {
  m.def("loss_forward", &loss_forward<T>, py::arg("name"), py::arg("output").noconvert(),
        py::arg("target").noconvert());
  m.def("loss_backward", &loss_backward<T>, py::arg("name"), py::arg("output").noconvert(),
        py::arg("target").noconvert());
  m.def("_loss_backward_samples_in_rows", &loss_backward<T, true>, py::arg("name"),
        py::arg("output").noconvert(), py::arg("target").noconvert(),
        "Test hook: loss_backward on output.T and target.T as C++ gets them from the hidden "
        "split (a row per sample); returns (J, dy.T).");
  m.def("sgd_step", &sgd_step<T>, py::arg("theta").noconvert(), py::arg("grad").noconvert(),
        py::arg("velocity").noconvert(), py::arg("lr"), py::arg("momentum"), py::arg("nesterov"),
        py::arg("weight_decay"));
  m.def("adam_step", &adam_step<T>, py::arg("theta").noconvert(), py::arg("grad").noconvert(),
        py::arg("m").noconvert(), py::arg("v").noconvert(), py::arg("step"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"));
  m.def("mapped_address", &mapped_address<T>, py::arg("x").noconvert(),
        "Address of the first element of the Eigen view the kernels use for x (tests check it "
        "equals x's own data pointer: no copy).");
  bind_trainer<T>(m);
}

// The orders of len(seeds) epochs of n samples (orders.hpp), as a (len(seeds), n) int64
// array. densa.native.sample_orders checks the arguments first and says what is wrong;
// this refuses, without crashing, what reaches it some other way.
py::array_t<std::int64_t> sample_orders(const py::array& seeds, Index n) {
  if (!is_seed_array(seeds)) {
    throw py::type_error("sample_orders: seeds must be a 1-D C-contiguous, aligned uint64 array");
  }
  if (n < 0) throw py::value_error("sample_orders: n must be >= 0");
  const auto count = static_cast<Index>(seeds.shape(0));
  py::array_t<std::int64_t> out({count, n});
  const auto* s = static_cast<const std::uint64_t*>(seeds.data());
  std::int64_t* o = out.mutable_data();
  // A large order (a million samples: ~5 ms) lets other Python threads run.
  std::optional<py::gil_scoped_release> release;
  if (count * n > (1 << 20)) release.emplace();
  for (Index e = 0; e < count; ++e) densa::sample_order(s[e], n, o + e * n);
  return out;
}

// Whether a float32 or float64 C-contiguous array holds no NaN or inf (finite.hpp): the
// native backend's check of a network's inputs (densa.native._all_finite).
bool all_finite_array(const py::array& a) {
  if (!(a.flags() & py::array::c_style)) {
    throw py::type_error("all_finite: the array must be C-contiguous");
  }
  const auto size = static_cast<Index>(a.size());
  const bool single = py::isinstance<py::array_t<float>>(a);
  if (!single && !py::isinstance<py::array_t<double>>(a)) {
    throw py::type_error("all_finite: the array must be float32 or float64");
  }
  // A large training set (W3's: 188 MB, ~20 ms) lets other Python threads run.
  std::optional<py::gil_scoped_release> release;
  if (size > (Index(1) << 20)) release.emplace();
  return single ? densa::all_finite(static_cast<const float*>(a.data()), size)
                : densa::all_finite(static_cast<const double*>(a.data()), size);
}

// Whether `a` is a network's (rows, cols) input as the trainer reads it, with nothing to
// convert or report: `dtype` (float32 or float64) in native byte order, 2-D, C-contiguous,
// aligned to its element size, at least one row (exactly n_rows unless n_rows < 0), n_cols
// columns, and with check_finite, no NaN or inf. False for anything else, which the
// caller then converts or refuses with its own message (Network._prepare_X): fit's common
// case in one crossing, where the Python checks took ~2 ms of a W4 fit in the benchmark's
// company (each a NumPy attribute or call whose code the idle pause has made cold).
bool ready_rows(const py::array& a, const py::dtype& dtype, Index n_rows, Index n_cols,
                bool check_finite) {
  const bool single = is_dtype<float>(dtype);
  if (!single && !is_dtype<double>(dtype)) return false;
  if (!(single ? reads_in_place<float>(a) : reads_in_place<double>(a)) || a.ndim() != 2) {
    return false;
  }
  const auto rows = static_cast<Index>(a.shape(0));
  if (rows < 1 || (n_rows >= 0 && rows != n_rows) || static_cast<Index>(a.shape(1)) != n_cols) {
    return false;
  }
  return !check_finite || all_finite_array(a);
}

// Labels (int64, 1-D) as (N, n_classes) one-hot rows of float32 or float64; None when a
// label lies outside [0, n_classes), for the caller to report (losses.encode_targets).
py::object one_hot(const py::array& labels, Index n_classes, const py::dtype& dtype) {
  if (!py::isinstance<py::array_t<std::int64_t>>(labels) || labels.ndim() != 1 ||
      !(labels.flags() & py::array::c_style)) {
    throw py::type_error("one_hot: labels must be a C-contiguous 1-D int64 array");
  }
  DENSA_REQUIRE(n_classes > 0, "one_hot: n_classes must be positive");
  const auto n = static_cast<Index>(labels.shape(0));
  const auto* p = static_cast<const std::int64_t*>(labels.data());
  const auto fill = [&](auto tag) -> py::object {
    using T = decltype(tag);
    Array<T> rows = new_batch<T>(n, n_classes);
    if (!densa::one_hot_rows<T>(p, n, n_classes, rows.mutable_data())) return py::none();
    return std::move(rows);
  };
  if (is_dtype<float>(dtype)) return fill(float{});
  if (is_dtype<double>(dtype)) return fill(double{});
  throw py::type_error("one_hot: dtype must be float32 or float64");
}

bool same_dtype(const py::array& a, const py::array& b) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(a.dtype().ptr(), b.dtype().ptr());
}

// Whether an optimizer's state already fits a network's parameters as Optimizer.prepare
// leaves it: per layer, a list of n arrays of its W's (and b's) dtype and shape, each
// C-contiguous, writeable and starting on an `alignment`-byte boundary (_memory.py says
// why). False for anything else, which prepare then creates or realigns itself: this
// replaces its comparisons of shapes, dtypes and addresses (~2 ms of a W4 fit right after
// an idle pause, in the benchmark's company) with one crossing.
bool state_ready(const py::list& params_W, const py::list& params_b, const py::list& state_W,
                 const py::list& state_b, std::size_t n, std::size_t alignment) {
  DENSA_REQUIRE(alignment > 0, "state_ready: alignment must be positive");
  const std::size_t layers = params_W.size();
  if (params_b.size() != layers || state_W.size() != layers || state_b.size() != layers) {
    return false;
  }
  const auto fits = [&](const py::handle& param, const py::handle& states) {
    if (!py::isinstance<py::array>(param) || !py::isinstance<py::list>(states)) return false;
    const auto p = py::reinterpret_borrow<py::array>(param);
    const auto list = py::reinterpret_borrow<py::list>(states);
    if (list.size() != n) return false;
    for (const auto& item : list) {
      if (!py::isinstance<py::array>(item)) return false;
      const auto a = py::reinterpret_borrow<py::array>(item);
      if (!same_dtype(a, p) || a.ndim() != p.ndim()) return false;
      for (py::ssize_t d = 0; d < a.ndim(); ++d) {
        if (a.shape(d) != p.shape(d)) return false;
      }
      if (!(a.flags() & py::array::c_style) || !a.writeable()) return false;
      if (reinterpret_cast<std::uintptr_t>(a.data()) % alignment != 0) return false;
    }
    return true;
  };
  for (std::size_t i = 0; i < layers; ++i) {
    if (!fits(params_W[i], state_W[i]) || !fits(params_b[i], state_b[i])) return false;
  }
  return true;
}

// Zeros shaped like each array of `like` (its dtype and shape, C-contiguous), each
// starting on an `alignment`-byte boundary: what _memory.aligned_zeros makes, a view into
// a uint8 NumPy array of its own that owns the memory (so densa.native.Trainer still sees
// distinct allocations), for all of an optimizer's new state in one crossing
// (Optimizer.prepare: four such allocations took ~2 ms of a digits fit right after an
// idle pause).
py::list aligned_zeros_like(const py::list& like, std::size_t alignment) {
  DENSA_REQUIRE(alignment > 0, "aligned_zeros_like: alignment must be positive");
  py::list out;
  for (const auto& item : like) {
    if (!py::isinstance<py::array>(item)) {
      throw py::type_error("aligned_zeros_like: like must hold NumPy arrays");
    }
    const auto a = py::reinterpret_borrow<py::array>(item);
    const auto nbytes = static_cast<std::size_t>(a.size()) * static_cast<std::size_t>(a.itemsize());
    py::array_t<std::uint8_t> raw(static_cast<py::ssize_t>(nbytes + alignment));
    auto* base = raw.mutable_data();
    const auto address = reinterpret_cast<std::uintptr_t>(base);
    auto* start = base + (alignment - address % alignment) % alignment;
    std::memset(start, 0, nbytes);
    std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
    out.append(py::array(a.dtype(), std::move(shape), std::vector<py::ssize_t>{}, start, raw));
  }
  return out;
}

// LastFinite.capture's work in one call (python/densa/_guard.py says what it is for):
// live[:n_params] are the parameters, live[:n_checked] the arrays checked for NaN and
// inf (float32 or float64), and every live array is copied into the spare array of
// the same index when all checked ones are finite and `copy` is set. Returns 2 when
// all checked arrays are finite, 1 when only the parameters are (nothing is copied),
// 0 when a parameter is not. densa.native.copy_if_finite hands it the lists LastFinite
// built; this refuses, without crashing, arrays that do not pair up.
int copy_if_finite(const py::list& live, const py::list& spare, std::size_t n_params,
                   std::size_t n_checked, bool copy) {
  const std::size_t n = live.size();
  if (spare.size() != n || n_params > n_checked || n_checked > n) {
    throw py::value_error("copy_if_finite: live and spare must pair up, n_params <= n_checked");
  }
  std::vector<py::array> src(n), dst(n);
  for (std::size_t i = 0; i < n; ++i) {
    // NumPy arrays only: a cast would turn a list into a temporary, copied in vain.
    if (!py::isinstance<py::array>(live[i]) || !py::isinstance<py::array>(spare[i])) {
      throw py::type_error("copy_if_finite: live and spare must hold NumPy arrays");
    }
    src[i] = py::reinterpret_borrow<py::array>(live[i]);
    dst[i] = py::reinterpret_borrow<py::array>(spare[i]);
    // Numbers only: a byte copy of object (or structured) arrays would duplicate Python
    // references without counting them.
    for (const py::array* a : {&src[i], &dst[i]}) {
      const char kind = a->dtype().kind();
      if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f') {
        throw py::type_error("copy_if_finite: arrays must hold bool, integer or float numbers");
      }
    }
    // Equal dtypes by value: an unpickled array has a dtype object of its own.
    const bool paired = same_dtype(src[i], dst[i]) && src[i].nbytes() == dst[i].nbytes() &&
                        (src[i].flags() & py::array::c_style) && (dst[i].flags() & py::array::c_style) &&
                        dst[i].writeable();
    if (!paired) throw py::value_error("copy_if_finite: arrays " + std::to_string(i) + " do not pair up");
  }
  // When copying, no spare may share memory with a live array or another spare: the
  // copy would then overwrite what it reads (LastFinite's buffers are its own).
  const auto bounds = [](const py::array& a) {
    const auto* p = static_cast<const char*>(a.data());
    return std::make_pair(p, p + a.nbytes());
  };
  for (std::size_t i = 0; copy && i < n; ++i) {
    const auto d = bounds(dst[i]);
    for (std::size_t j = 0; j < n; ++j) {
      const auto l = bounds(src[j]);
      const bool overlaps_live = d.first < l.second && l.first < d.second;
      const auto o = bounds(dst[j]);
      const bool overlaps_spare = j != i && d.first < o.second && o.first < d.second;
      if (overlaps_live || overlaps_spare) {
        throw py::value_error("copy_if_finite: spare arrays must not share memory with live "
                              "arrays or with each other");
      }
    }
  }
  const auto finite = [&](std::size_t i) {
    const py::array& a = src[i];
    const auto size = static_cast<Index>(a.size());
    if (py::isinstance<py::array_t<float>>(a)) return densa::all_finite(static_cast<const float*>(a.data()), size);
    if (py::isinstance<py::array_t<double>>(a)) return densa::all_finite(static_cast<const double*>(a.data()), size);
    throw py::type_error("copy_if_finite: checked arrays must be float32 or float64");
  };
  std::size_t i = 0;
  while (i < n_checked && finite(i)) ++i;
  // The parameters come first: a first non-finite array among them means 0.
  if (i < n_checked) return i < n_params ? 0 : 1;
  if (copy) {
    for (std::size_t j = 0; j < n; ++j) {
      std::memcpy(dst[j].mutable_data(), src[j].data(), static_cast<std::size_t>(src[j].nbytes()));
    }
  }
  return 2;
}

// Instruction-set levels this CPU (and its OS) can run, for the loader
// (python/densa/_core.py) to pick the fastest extension module built.
py::dict cpu_features() {
  py::dict d;
  bool v3 = false, v4 = false;
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  v3 = __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") &&
       __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
       __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c") &&
       __builtin_cpu_supports("popcnt");
  v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
       __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
       __builtin_cpu_supports("avx512vl");
#endif
  d["x86-64-v3"] = v3;
  d["x86-64-v4"] = v4;
  return d;
}

}  // namespace

#ifndef DENSA_MODULE_NAME
#define DENSA_MODULE_NAME _core
#endif
#ifndef DENSA_ISA
#define DENSA_ISA "baseline"
#endif

// Eigen 3.4's SimdInstructionSetsInUse() says "AVX" for an AVX2 + FMA build; list what
// this module was really compiled for.
static std::string simd_in_use() {
  std::string s;
  auto add = [&s](bool on, const char* name) {
    if (on) s += (s.empty() ? "" : ", ") + std::string(name);
  };
#ifdef EIGEN_VECTORIZE_AVX512
  add(true, "AVX512");
#endif
#ifdef EIGEN_VECTORIZE_AVX2
  add(true, "AVX2");
#endif
#ifdef EIGEN_VECTORIZE_FMA
  add(true, "FMA");
#endif
#ifdef EIGEN_VECTORIZE_AVX
  add(true, "AVX");
#endif
#ifdef EIGEN_VECTORIZE_SSE4_2
  add(true, "SSE4.2");
#endif
#ifdef EIGEN_VECTORIZE_SSE2
  add(true, "SSE2");
#endif
  return s.empty() ? "none" : s;
}

// _momentum_kernel_step: the kernel of momentum_update.hpp on its own, so that tests can
// compare the modules' kernels (AVX2 and AVX-512) bit for bit, which whole fits cannot:
// other parts of a fit round differently with wider vectors.
void momentum_kernel_step(py::array& W_arr, py::array& V_arr, const py::array& x_arr,
                          const py::array& dz_arr, double lr, double mu) {
#if DENSA_HAVE_MOMENTUM_KERNEL
  require_ndim<float>(W_arr, 2, "W");
  require_ndim<float>(V_arr, 2, "V");
  const auto x = as_batch<float>(x_arr, "x");
  const auto dz = as_batch<float>(dz_arr, "dz");
  const Index n_out = static_cast<Index>(W_arr.shape(0));
  const Index n_in = static_cast<Index>(W_arr.shape(1));
  DENSA_REQUIRE(V_arr.shape(0) == W_arr.shape(0) && V_arr.shape(1) == W_arr.shape(1),
                "V must have W's shape");
  DENSA_REQUIRE(x.rows() == n_in && dz.rows() == n_out && x.cols() == dz.cols() && x.cols() > 0,
                "x must be (K, n_in) and dz (K, n_out), K > 0");
  DENSA_REQUIRE(W_arr.writeable() && V_arr.writeable(), "W and V are updated in place");
  float* W = static_cast<float*>(W_arr.mutable_data());
  float* V = static_cast<float*>(V_arr.mutable_data());
  densa::MomentumScratch scratch(x.cols());
  py::gil_scoped_release release;
  densa::momentum_update(n_out, n_in, x.cols(), x.data(), n_in, dz.data(), n_out, W, V,
                         static_cast<float>(lr), static_cast<float>(mu), scratch);
#else
  (void)W_arr, (void)V_arr, (void)x_arr, (void)dz_arr, (void)lr, (void)mu;
  throw py::value_error("this module has no momentum kernel");
#endif
}

PYBIND11_MODULE(DENSA_MODULE_NAME, m) {
  m.doc() = "densa's native kernels (private; use densa.native or densa.Network)";
  m.def("dense_forward", &dense_forward_any, py::arg("W"), py::arg("b"), py::arg("x"),
        py::arg("activation"));
  m.def("network_forward", &network_forward_any, py::arg("Ws"), py::arg("bs"),
        py::arg("activations"), py::arg("x"), py::arg("chunk"),
        "y_K of x through every layer, chunk samples at a time (network_forward.hpp).");
  m.def("dense_backward", &dense_backward_any, py::arg("W"), py::arg("x"), py::arg("z"),
        py::arg("dy"), py::arg("activation"), py::arg("return_dz") = false);
  bind_dtype<float>(m);
  bind_dtype<double>(m);
  m.attr("eigen_version") = EIGEN_VERSION_STRING;
  m.attr("simd") = simd_in_use();
  m.attr("isa") = DENSA_ISA;
  m.attr("uses_blas") = densa::blas_enabled();
  m.attr("flushes_subnormals") = densa::kFlushesSubnormals;
  // The vectors of densa's own forward kernel (gemm_tn.hpp): what show_config names.
  m.attr("forward_kernel_simd") = DENSA_GEMM_TN_AVX512 ? "AVX-512"
                                  : DENSA_HAVE_GEMM_TN ? "AVX2 + FMA"
                                                       : "";
  // And of the momentum step's (momentum_update.hpp; DENSA_MOMENTUM_AVX512 is defined only
  // where the kernel is, hence the preprocessor).
#if DENSA_HAVE_MOMENTUM_KERNEL && DENSA_MOMENTUM_AVX512
  m.attr("momentum_kernel_simd") = "AVX-512";
#elif DENSA_HAVE_MOMENTUM_KERNEL
  m.attr("momentum_kernel_simd") = "AVX2 + FMA";
#else
  m.attr("momentum_kernel_simd") = "";
#endif
  m.def("cpu_features", &cpu_features,
        "Instruction-set levels the CPU and OS support: {'x86-64-v3': bool, 'x86-64-v4': bool}.");
  m.def("blas", &densa::blas_description, "The library computing the GEMMs, and its kernel.");
  m.def("set_num_threads", &densa::set_num_threads, py::arg("n"),
        "Threads densa's products use (1 = the calling thread only). Results do not depend "
        "on it.");
  m.def("get_num_threads", &densa::get_num_threads);
  m.def("all_finite", &all_finite_array, py::arg("a").noconvert(),
        "Whether a float32 or float64 C-contiguous array holds no NaN or inf.");
  m.def("ready_rows", &ready_rows, py::arg("a").noconvert(), py::arg("dtype"), py::arg("n_rows"),
        py::arg("n_cols"), py::arg("check_finite"),
        "Whether a is a (rows, cols) input the trainer reads in place: dtype, 2-D, C-contiguous, "
        "aligned, rows >= 1 (== n_rows unless negative), n_cols columns, finite if checked.");
  m.def("one_hot", &one_hot, py::arg("labels").noconvert(), py::arg("n_classes"), py::arg("dtype"),
        "Labels (int64, 1-D) as (N, n_classes) one-hot rows of float32 or float64; None when a "
        "label lies outside [0, n_classes).");
  m.def("state_ready", &state_ready, py::arg("params_W"), py::arg("params_b"), py::arg("state_W"),
        py::arg("state_b"), py::arg("n"), py::arg("alignment"),
        "Whether optimizer state fits the parameters: per layer n arrays of each one's dtype and "
        "shape, C-contiguous, writeable, aligned to alignment bytes.");
  m.def("aligned_zeros_like", &aligned_zeros_like, py::arg("like"), py::arg("alignment"),
        "Zeros like each array (dtype, shape; C-contiguous), each aligned to alignment bytes, "
        "in a uint8 array of its own.");
  m.def("copy_if_finite", &copy_if_finite, py::arg("live"), py::arg("spare"), py::arg("n_params"),
        py::arg("n_checked"), py::arg("copy"),
        "fit's finite copy in one call: 2 all finite (copied if copy), 1 only the parameters, "
        "0 not the parameters.");
  m.def("sample_orders", &sample_orders, py::arg("seeds"), py::arg("n"),
        "Epoch orders: row e shuffles 0..n-1 from seeds[e] (orders.hpp).");
  m.def(
      "_set_slab_policy",
      [](double min_slab_flops, std::int64_t max_slabs, std::int64_t align) {
        DENSA_REQUIRE(min_slab_flops > 0 && max_slabs >= 1 && align >= 1, "bad slab policy");
        densa::slab_policy() = densa::SlabPolicy{min_slab_flops, max_slabs, align};
      },
      py::arg("min_slab_flops"), py::arg("max_slabs"), py::arg("align"),
      "Tuning hook (benchmarks only): how products are cut into slabs.");
  m.def(
      "_gemm_tn_applies", [](Index M, Index N, Index K) { return densa::use_gemm_tn(M, N, K); },
      py::arg("M"), py::arg("N"), py::arg("K"),
      "Whether a float32 forward product of this shape runs on densa's own kernel "
      "(gemm_tn.hpp) rather than the BLAS (tests check both paths).");
  m.def(
      "_set_gemm_tn", [](bool enabled) { densa::gemm_tn_enabled().store(enabled); },
      py::arg("enabled"),
      "Benchmark hook: False sends every product to the BLAS, to compare (results then "
      "differ in rounding, not in meaning).");
  m.def(
      "_momentum_kernel_applies",
      [](Index n_out, Index n_in, Index max_batch) {
        return densa::use_momentum_kernel(n_out, n_in, max_batch);
      },
      py::arg("n_out"), py::arg("n_in"), py::arg("max_batch"),
      "Whether a float32 momentum-SGD trainer steps an n_out x n_in layer's weights on "
      "densa's own kernel (momentum_update.hpp) rather than the BLAS and a separate pass.");
  m.def("_momentum_kernel_step", &momentum_kernel_step, py::arg("W"), py::arg("V"), py::arg("x"),
        py::arg("dz"), py::arg("lr"), py::arg("mu"),
        "Test hook: one momentum step of densa's own kernel, in place: V = mu V + dz.T @ x, "
        "W -= lr V (W, V: (n_out, n_in); x: (K, n_in); dz: (K, n_out); float32). "
        "ValueError in a module without the kernel.");
  m.def(
      "_set_momentum_kernel", [](bool enabled) { densa::momentum_kernel_enabled().store(enabled); },
      py::arg("enabled"),
      "Benchmark and test hook: False sends every layer's momentum step to the BLAS and a "
      "separate pass (read when a Trainer is built, and by _momentum_kernel_applies, hence "
      "show_config; results then differ in rounding, not in meaning).");
  m.def(
      "_set_hidden_split", [](bool enabled) { densa::hidden_split_enabled().store(enabled); },
      py::arg("enabled"),
      "Benchmark and test hook: False trains every network through the general loop "
      "(read when a Trainer is built; results then differ in rounding, not in meaning).");
  m.def(
      "_set_first_layer_split",
      [](bool enabled) { densa::first_layer_split_enabled().store(enabled); }, py::arg("enabled"),
      "Benchmark and test hook: False trains networks of three or more layers through the "
      "general loop (read when a Trainer is built; results then differ in rounding, not in "
      "meaning).");
  m.def(
      "_set_flush_subnormals",
      [](bool enabled) { densa::flush_subnormals_enabled().store(enabled); }, py::arg("enabled"),
      "Benchmark and test hook: False lets the trainer compute with subnormal numbers, in "
      "the caller's mode (read at the start of each training call; results then differ "
      "only below the smallest normal number).");
  m.def(
      "_set_relu_backward", [](bool enabled) { densa::relu_backward_enabled().store(enabled); },
      py::arg("enabled"),
      "Benchmark and test hook: False sends the hidden split's relu backward step through "
      "its three passes (results then differ in rounding, not in meaning).");
  m.def(
      "_relu_backward",
      [](const py::array_t<float, py::array::c_style>& W, const py::array_t<float, py::array::c_style>& D,
         const py::array_t<float, py::array::c_style>& z) -> py::object {
        // W: (o, m), D: (o, bs), z: (bs, m), C-contiguous float32 (relu_backward.hpp's A,
        // B and z); returns (dz (bs, m), db (m,)), or None where the kernel does not apply.
        DENSA_REQUIRE(W.ndim() == 2 && D.ndim() == 2 && z.ndim() == 2,
                      "_relu_backward: W, D and z must be 2-D");
        const Index o = W.shape(0), units = W.shape(1), bs = D.shape(1);
        DENSA_REQUIRE(D.shape(0) == o && z.shape(0) == bs && z.shape(1) == units,
                      "_relu_backward: shapes do not chain: W (o, m), D (o, bs), z (bs, m)");
        py::array_t<float> dz({bs, units}), db(units);
        if (!densa::relu_backward_fused<float>(densa::Activation::relu, units, bs, o, W.data(),
                                               D.data(), z.data(), dz.mutable_data(), units,
                                               db.mutable_data())) {
          return py::none();
        }
        return py::make_tuple(dz, db);
      },
      py::arg("W"), py::arg("D"), py::arg("z"),
      "Test hook: the hidden split's fused relu backward step on one team's slice.");
  m.def("_slab_policy", [] {
    const auto& p = densa::slab_policy();
    return py::make_tuple(p.min_slab_flops, p.max_slabs, p.align);
  });
  densa::init_gemm_backend();
}
