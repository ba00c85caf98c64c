"""
densa's native kernels (private; use densa.native or densa.Network)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['Trainer_float32', 'Trainer_float64', 'adam_step', 'aligned_zeros_like', 'all_finite', 'blas', 'copy_if_finite', 'cpu_features', 'dense_backward', 'dense_forward', 'eigen_version', 'flushes_subnormals', 'forward_kernel_simd', 'get_num_threads', 'isa', 'loss_backward', 'loss_forward', 'mapped_address', 'momentum_kernel_simd', 'network_forward', 'one_hot', 'ready_rows', 'sample_orders', 'set_num_threads', 'sgd_step', 'simd', 'state_ready', 'uses_blas']
class Trainer_float32:
    def __init__(self, Ws: list[numpy.ndarray], bs: list[numpy.ndarray], activations: collections.abc.Sequence[str], loss: str, optimizer: str, hyper: dict, state_W: list[list[numpy.ndarray]], state_b: list[list[numpy.ndarray]], step: typing.Any, max_batch: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def fit(self, X: numpy.typing.NDArray[numpy.float32], targets: numpy.typing.NDArray[numpy.float32], seeds: typing.Any, n_epochs: typing.SupportsInt | typing.SupportsIndex, batch_size: typing.SupportsInt | typing.SupportsIndex, loss_out: list, penalty_out: list, seconds_out: list) -> tuple:
        ...
    def run(self, X: numpy.typing.NDArray[numpy.float32], targets: numpy.typing.NDArray[numpy.float32], order: numpy.typing.NDArray[numpy.int64], batch_size: typing.SupportsInt | typing.SupportsIndex, first_batch: typing.SupportsInt | typing.SupportsIndex, n_batches: typing.SupportsInt | typing.SupportsIndex) -> tuple:
        ...
    def run_epochs(self, X: numpy.typing.NDArray[numpy.float32], targets: numpy.typing.NDArray[numpy.float32], orders: numpy.typing.NDArray[numpy.int64], batch_size: typing.SupportsInt | typing.SupportsIndex) -> tuple:
        ...
    @property
    def momentum_kernel_layers(self) -> list[bool]:
        """
        Per layer, whether W's momentum steps run on densa's kernel (momentum_update.hpp) rather than the BLAS and a separate pass.
        """
    @property
    def splits_first_layer(self) -> bool:
        """
        Whether this network trains with its first layer's units split between two threads (first_layer_split.hpp).
        """
    @property
    def splits_hidden_layer(self) -> bool:
        """
        Whether this network trains with its hidden units split between two threads (hidden_split.hpp).
        """
class Trainer_float64:
    def __init__(self, Ws: list[numpy.ndarray], bs: list[numpy.ndarray], activations: collections.abc.Sequence[str], loss: str, optimizer: str, hyper: dict, state_W: list[list[numpy.ndarray]], state_b: list[list[numpy.ndarray]], step: typing.Any, max_batch: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def fit(self, X: numpy.typing.NDArray[numpy.float64], targets: numpy.typing.NDArray[numpy.float64], seeds: typing.Any, n_epochs: typing.SupportsInt | typing.SupportsIndex, batch_size: typing.SupportsInt | typing.SupportsIndex, loss_out: list, penalty_out: list, seconds_out: list) -> tuple:
        ...
    def run(self, X: numpy.typing.NDArray[numpy.float64], targets: numpy.typing.NDArray[numpy.float64], order: numpy.typing.NDArray[numpy.int64], batch_size: typing.SupportsInt | typing.SupportsIndex, first_batch: typing.SupportsInt | typing.SupportsIndex, n_batches: typing.SupportsInt | typing.SupportsIndex) -> tuple:
        ...
    def run_epochs(self, X: numpy.typing.NDArray[numpy.float64], targets: numpy.typing.NDArray[numpy.float64], orders: numpy.typing.NDArray[numpy.int64], batch_size: typing.SupportsInt | typing.SupportsIndex) -> tuple:
        ...
    @property
    def momentum_kernel_layers(self) -> list[bool]:
        """
        Per layer, whether W's momentum steps run on densa's kernel (momentum_update.hpp) rather than the BLAS and a separate pass.
        """
    @property
    def splits_first_layer(self) -> bool:
        """
        Whether this network trains with its first layer's units split between two threads (first_layer_split.hpp).
        """
    @property
    def splits_hidden_layer(self) -> bool:
        """
        Whether this network trains with its hidden units split between two threads (hidden_split.hpp).
        """
def _gemm_tn_applies(M: typing.SupportsInt | typing.SupportsIndex, N: typing.SupportsInt | typing.SupportsIndex, K: typing.SupportsInt | typing.SupportsIndex) -> bool:
    """
    Whether a float32 forward product of this shape runs on densa's own kernel (gemm_tn.hpp) rather than the BLAS (tests check both paths).
    """
@typing.overload
def _loss_backward_samples_in_rows(name: str, output: numpy.typing.NDArray[numpy.float32], target: numpy.typing.NDArray[numpy.float32]) -> tuple:
    """
    Test hook: loss_backward on output.T and target.T as C++ gets them from the hidden split (a row per sample); returns (J, dy.T).
    """
@typing.overload
def _loss_backward_samples_in_rows(name: str, output: numpy.typing.NDArray[numpy.float64], target: numpy.typing.NDArray[numpy.float64]) -> tuple:
    """
    Test hook: loss_backward on output.T and target.T as C++ gets them from the hidden split (a row per sample); returns (J, dy.T).
    """
def _momentum_kernel_applies(n_out: typing.SupportsInt | typing.SupportsIndex, n_in: typing.SupportsInt | typing.SupportsIndex, max_batch: typing.SupportsInt | typing.SupportsIndex) -> bool:
    """
    Whether a float32 momentum-SGD trainer steps an n_out x n_in layer's weights on densa's own kernel (momentum_update.hpp) rather than the BLAS and a separate pass.
    """
def _momentum_kernel_step(W: numpy.ndarray, V: numpy.ndarray, x: numpy.ndarray, dz: numpy.ndarray, lr: typing.SupportsFloat | typing.SupportsIndex, mu: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    Test hook: one momentum step of densa's own kernel, in place: V = mu V + dz.T @ x, W -= lr V (W, V: (n_out, n_in); x: (K, n_in); dz: (K, n_out); float32). ValueError in a module without the kernel.
    """
def _relu_backward(W: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], D: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> typing.Any:
    """
    Test hook: the hidden split's fused relu backward step on one team's slice.
    """
def _set_first_layer_split(enabled: bool) -> None:
    """
    Benchmark and test hook: False trains networks of three or more layers through the general loop (read when a Trainer is built; results then differ in rounding, not in meaning).
    """
def _set_flush_subnormals(enabled: bool) -> None:
    """
    Benchmark and test hook: False lets the trainer compute with subnormal numbers, in the caller's mode (read at the start of each training call; results then differ only below the smallest normal number).
    """
def _set_gemm_tn(enabled: bool) -> None:
    """
    Benchmark hook: False sends every product to the BLAS, to compare (results then differ in rounding, not in meaning).
    """
def _set_hidden_split(enabled: bool) -> None:
    """
    Benchmark and test hook: False trains every network through the general loop (read when a Trainer is built; results then differ in rounding, not in meaning).
    """
def _set_momentum_kernel(enabled: bool) -> None:
    """
    Benchmark and test hook: False sends every layer's momentum step to the BLAS and a separate pass (read when a Trainer is built, and by _momentum_kernel_applies, hence show_config; results then differ in rounding, not in meaning).
    """
def _set_relu_backward(enabled: bool) -> None:
    """
    Benchmark and test hook: False sends the hidden split's relu backward step through its three passes (results then differ in rounding, not in meaning).
    """
def _set_slab_policy(min_slab_flops: typing.SupportsFloat | typing.SupportsIndex, max_slabs: typing.SupportsInt | typing.SupportsIndex, align: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Tuning hook (benchmarks only): how products are cut into slabs.
    """
def _slab_policy() -> tuple[float, int, int]:
    ...
@typing.overload
def adam_step(theta: numpy.typing.NDArray[numpy.float32], grad: numpy.typing.NDArray[numpy.float32], m: numpy.typing.NDArray[numpy.float32], v: numpy.typing.NDArray[numpy.float32], step: typing.SupportsInt | typing.SupportsIndex, lr: typing.SupportsFloat | typing.SupportsIndex, beta1: typing.SupportsFloat | typing.SupportsIndex, beta2: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, weight_decay: typing.SupportsFloat | typing.SupportsIndex) -> None:
    ...
@typing.overload
def adam_step(theta: numpy.typing.NDArray[numpy.float64], grad: numpy.typing.NDArray[numpy.float64], m: numpy.typing.NDArray[numpy.float64], v: numpy.typing.NDArray[numpy.float64], step: typing.SupportsInt | typing.SupportsIndex, lr: typing.SupportsFloat | typing.SupportsIndex, beta1: typing.SupportsFloat | typing.SupportsIndex, beta2: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, weight_decay: typing.SupportsFloat | typing.SupportsIndex) -> None:
    ...
def aligned_zeros_like(like: list, alignment: typing.SupportsInt | typing.SupportsIndex) -> list:
    """
    Zeros like each array (dtype, shape; C-contiguous), each aligned to alignment bytes, in a uint8 array of its own.
    """
def all_finite(a: numpy.ndarray) -> bool:
    """
    Whether a float32 or float64 C-contiguous array holds no NaN or inf.
    """
def blas() -> str:
    """
    The library computing the GEMMs, and its kernel.
    """
def copy_if_finite(live: list, spare: list, n_params: typing.SupportsInt | typing.SupportsIndex, n_checked: typing.SupportsInt | typing.SupportsIndex, copy: bool) -> int:
    """
    fit's finite copy in one call: 2 all finite (copied if copy), 1 only the parameters, 0 not the parameters.
    """
def cpu_features() -> dict:
    """
    Instruction-set levels the CPU and OS support: {'x86-64-v3': bool, 'x86-64-v4': bool}.
    """
def dense_backward(W: numpy.ndarray, x: numpy.ndarray, z: numpy.ndarray, dy: numpy.ndarray, activation: str, return_dz: bool = False) -> tuple:
    ...
def dense_forward(W: numpy.ndarray, b: numpy.ndarray, x: numpy.ndarray, activation: str) -> tuple:
    ...
def get_num_threads() -> int:
    ...
@typing.overload
def loss_backward(name: str, output: numpy.typing.NDArray[numpy.float32], target: numpy.typing.NDArray[numpy.float32]) -> tuple:
    ...
@typing.overload
def loss_backward(name: str, output: numpy.typing.NDArray[numpy.float64], target: numpy.typing.NDArray[numpy.float64]) -> tuple:
    ...
@typing.overload
def loss_forward(name: str, output: numpy.typing.NDArray[numpy.float32], target: numpy.typing.NDArray[numpy.float32]) -> float:
    ...
@typing.overload
def loss_forward(name: str, output: numpy.typing.NDArray[numpy.float64], target: numpy.typing.NDArray[numpy.float64]) -> float:
    ...
@typing.overload
def mapped_address(x: numpy.typing.NDArray[numpy.float32]) -> int:
    """
    Address of the first element of the Eigen view the kernels use for x (tests check it equals x's own data pointer: no copy).
    """
@typing.overload
def mapped_address(x: numpy.typing.NDArray[numpy.float64]) -> int:
    """
    Address of the first element of the Eigen view the kernels use for x (tests check it equals x's own data pointer: no copy).
    """
def network_forward(Ws: collections.abc.Sequence[numpy.ndarray], bs: collections.abc.Sequence[numpy.ndarray], activations: collections.abc.Sequence[str], x: numpy.ndarray, chunk: typing.SupportsInt | typing.SupportsIndex) -> numpy.ndarray:
    """
    y_K of x through every layer, chunk samples at a time (network_forward.hpp).
    """
def one_hot(labels: numpy.ndarray, n_classes: typing.SupportsInt | typing.SupportsIndex, dtype: numpy.dtype[typing.Any]) -> typing.Any:
    """
    Labels (int64, 1-D) as (N, n_classes) one-hot rows of float32 or float64; None when a label lies outside [0, n_classes).
    """
def ready_rows(a: numpy.ndarray, dtype: numpy.dtype[typing.Any], n_rows: typing.SupportsInt | typing.SupportsIndex, n_cols: typing.SupportsInt | typing.SupportsIndex, check_finite: bool) -> bool:
    """
    Whether a is a (rows, cols) input the trainer reads in place: dtype, 2-D, C-contiguous, aligned, rows >= 1 (== n_rows unless negative), n_cols columns, finite if checked.
    """
def sample_orders(seeds: numpy.ndarray, n: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int64]:
    """
    Epoch orders: row e shuffles 0..n-1 from seeds[e] (orders.hpp).
    """
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Threads densa's products use (1 = the calling thread only). Results do not depend on it.
    """
@typing.overload
def sgd_step(theta: numpy.typing.NDArray[numpy.float32], grad: numpy.typing.NDArray[numpy.float32], velocity: numpy.typing.NDArray[numpy.float32], lr: typing.SupportsFloat | typing.SupportsIndex, momentum: typing.SupportsFloat | typing.SupportsIndex, nesterov: bool, weight_decay: typing.SupportsFloat | typing.SupportsIndex) -> None:
    ...
@typing.overload
def sgd_step(theta: numpy.typing.NDArray[numpy.float64], grad: numpy.typing.NDArray[numpy.float64], velocity: numpy.typing.NDArray[numpy.float64], lr: typing.SupportsFloat | typing.SupportsIndex, momentum: typing.SupportsFloat | typing.SupportsIndex, nesterov: bool, weight_decay: typing.SupportsFloat | typing.SupportsIndex) -> None:
    ...
def state_ready(params_W: list, params_b: list, state_W: list, state_b: list, n: typing.SupportsInt | typing.SupportsIndex, alignment: typing.SupportsInt | typing.SupportsIndex) -> bool:
    """
    Whether optimizer state fits the parameters: per layer n arrays of each one's dtype and shape, C-contiguous, writeable, aligned to alignment bytes.
    """
eigen_version: str
flushes_subnormals: bool
forward_kernel_simd: str
isa: str
momentum_kernel_simd: str
simd: str
uses_blas: bool
