#!/usr/bin/env bash
# Build densa's extension with AddressSanitizer + UndefinedBehaviorSanitizer into a
# fresh virtual environment, then run the kernel and network tests under it. Any
# sanitizer report fails the run.
#
# Python itself is not instrumented, so the sanitizer runtimes are preloaded
# (LD_PRELOAD): ASan must be the first library loaded to intercept malloc and friends.
# The tests import densa from that venv's site-packages, never from the source tree;
# the script checks that every extension module it imports carries ASan.
#
# Usage: .ci/sanitizers.sh [extra pytest arguments]
# DENSA_SANITIZE_WORK=<dir> keeps the venv, build tree and logs there (default: a
#   temporary directory, removed at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

if [[ -n "${DENSA_SANITIZE_WORK:-}" ]]; then
  work="$DENSA_SANITIZE_WORK"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
venv="$work/venv"
logs="$work/sanitizer-logs"
rm -rf "$logs"
mkdir -p "$logs"

cxx="${CXX:-g++}"
asan_lib="$("$cxx" -print-file-name=libasan.so)"
ubsan_lib="$("$cxx" -print-file-name=libubsan.so)"
for lib in "$asan_lib" "$ubsan_lib"; do
  if [[ ! -e "$lib" ]]; then
    echo "sanitizers: $cxx has no $(basename "$lib") (install the compiler's sanitizer runtime)" >&2
    exit 1
  fi
done

echo "== sanitizers: build (ASan + UBSan) into $venv"
start=$SECONDS
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# -O1 -g without -DNDEBUG: readable stack traces, and Eigen's own bounds assertions
# (eigen_assert) stay on, so an out-of-range block or a size mismatch aborts too.
# DENSA_ISA_VARIANTS=ON, as in a normal build: the x86-64-v3 module has code the
# portable one lacks (gemm_tn.hpp's AVX2 kernel), and it is the one imported on an AVX2
# machine, so that is the code the tests must run under the sanitizers.
"$venv/bin/python" -m pip install --quiet \
  -Ccmake.define.DENSA_SANITIZE=ON \
  -Ccmake.define.DENSA_ISA_VARIANTS=ON \
  -Ccmake.build-type=RelWithDebInfo \
  "-Ccmake.define.CMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" \
  -Cbuild-dir="$work/build" \
  "$repo" pytest hypothesis
echo "   built in $((SECONDS - start)) s"

# Every compiled densa module must be instrumented, or the run would prove nothing.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
mapfile -t modules < <(find "$site/densa" -name '*.so')
if [[ ${#modules[@]} -eq 0 ]]; then
  echo "sanitizers: no extension module found under $site/densa" >&2
  exit 1
fi
for so in "${modules[@]}"; do
  # grep reads everything (no -q): an early exit would SIGPIPE nm and, under
  # pipefail, fail the pipeline even on a match.
  if ! nm -D "$so" | grep '__asan_init\|__asan_report' >/dev/null; then
    echo "sanitizers: $so is not built with AddressSanitizer" >&2
    exit 1
  fi
done

# The kernel, trainer and network tests, and the robustness ones that feed them garbage
# and huge sizes. Left out: slow training runs, the interrupt tests (timing-sensitive),
# the resident-memory tests (ASan's quarantine holds freed memory on purpose) and the
# file tests (pure Python).
mapfile -t tests < <(cd "$repo" && ls tests/test_activations.py tests/test_dense_kernels.py tests/test_gemm_tn_kernel.py \
  tests/test_hand_computed.py tests/test_kernel_errors.py tests/test_zero_copy.py tests/test_hidden_split.py \
  tests/test_first_layer_split.py tests/test_trainer_exceptions.py tests/test_float_mode.py \
  tests/test_loss_optimizer_kernels.py tests/test_optimizer_step_inputs.py tests/test_trainer_kernels.py \
  tests/test_trainer_guards.py tests/test_network_*.py tests/test_orders.py tests/test_pool_wake.py tests/test_relu_backward.py \
  tests/test_robustness_inputs.py tests/test_robustness_divergence.py tests/test_finite_checks.py tests/test_pacing.py tests/test_momentum_kernel.py \
  tests/test_robustness_threads.py tests/test_fuzz_public_api.py tests/test_one_hot_targets.py 2>/dev/null)
if [[ ${#tests[@]} -eq 0 ]]; then
  echo "sanitizers: no test file found" >&2
  exit 1
fi

echo "== sanitizers: ${#tests[@]} test files under ASan + UBSan"
export LD_PRELOAD="$asan_lib:$ubsan_lib"
# detect_leaks=0: CPython keeps objects alive until exit by design. allocator_may_return_null:
# a request that cannot be met (tests ask for 10**12 elements) returns NULL, so numpy
# raises MemoryError and C++ throws std::bad_alloc, as without ASan, instead of aborting.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=1:strict_init_order=1:check_initialization_order=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
# The hypothesis module runs fewer examples here: instrumented code is slower.
export DENSA_FUZZ_EXAMPLES="${DENSA_FUZZ_EXAMPLES:-150}"
start=$SECONDS
status=0
(cd "$repo" && "$venv/bin/python" -c 'import densa, sys; sys.exit(not densa.__file__.startswith(sys.argv[1]))' "$site") || {
  echo "sanitizers: densa is not imported from the sanitized venv" >&2
  exit 1
}
# --capture=sys: pytest's default fd capture would swallow what the sanitizers write
# to file descriptor 2 (UBSan ignores log_path here) when the process dies with it.
output="$work/pytest-output.txt"
set +e
(cd "$repo" && "$venv/bin/python" -m pytest -q -p no:cacheprovider --capture=sys -m "not slow" \
  "${tests[@]}" "$@") 2>&1 | tee "$output"
status=${PIPESTATUS[0]}
set -e
unset LD_PRELOAD
echo "   tests ran in $((SECONDS - start)) s (pytest exit status $status)"

# ASan reports go to the log files, UBSan's to stderr (kept in $output); either also
# kills pytest (abort_on_error / halt_on_error), so its status shows them too. A failed
# huge allocation leaves a warning in the logs, which is expected.
report='ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer'
shopt -s nullglob
logfiles=("$logs"/*)
if grep -qE "$report" "$output" "${logfiles[@]}"; then
  echo "sanitizers: reports found:" >&2
  if [[ ${#logfiles[@]} -gt 0 ]]; then cat "${logfiles[@]}" >&2; fi
  grep -E -A 12 "$report" "$output" >&2 || true
  exit 1
fi
if [[ ${#logfiles[@]} -gt 0 ]]; then
  echo "   sanitizer notes (not errors):"
  cat "${logfiles[@]}"
fi
if [[ $status -ne 0 ]]; then
  echo "sanitizers: pytest failed (exit status $status)" >&2
  exit "$status"
fi
echo "== sanitizers: no report"
