# Warnings and tuning for densa's own targets only; Eigen and pybind11 are imported
# targets, so their headers are SYSTEM includes and stay out of our warnings.
function(densa_set_compiler_options target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wconversion -Wshadow -Wpedantic)
    if(DENSA_NATIVE_ARCH)
      target_compile_options(${target} PRIVATE -march=native)
    endif()
    if(DENSA_SANITIZE)
      target_compile_options(${target} PRIVATE -fsanitize=address,undefined
                             -fno-omit-frame-pointer -fno-sanitize-recover=all)
      target_link_options(${target} PRIVATE -fsanitize=address,undefined)
    endif()
  endif()
endfunction()
