# Warnings for densa's own targets only; Eigen, pybind11 and OpenBLAS are imported
# targets, so their headers are SYSTEM includes and stay out of our warnings.
# CPU-specific flags are not set here: CMakeLists.txt builds one module per ISA level
# (DENSA_ISA_VARIANTS; OFF gives one portable module with no CPU-specific tuning).
function(densa_set_compiler_options target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wconversion -Wshadow -Wpedantic)
    # No fused multiply-add contraction: Eigen evaluates the edges of an element-wise
    # expression with scalar code and the rest with SIMD packets; contracting a*b+c in
    # one and not the other would make results depend on where NumPy put an array.
    target_compile_options(${target} PRIVATE -ffp-contract=off)
    if(DENSA_SANITIZE)
      target_compile_options(${target} PRIVATE -fsanitize=address,undefined
                             -fno-omit-frame-pointer -fno-sanitize-recover=all)
      target_link_options(${target} PRIVATE -fsanitize=address,undefined)
    endif()
  endif()
endfunction()
