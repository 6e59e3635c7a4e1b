# The CUDA runtime's tests, registered the same way by the full build
# (test/CMakeLists.txt) and by the runtime's standalone build (the GPU
# machine has no LLVM). ROOT is the repository root.
function(attnc_add_cuda_tests ROOT)
  set(unit ${ROOT}/test/runtime)
  set(defs ATTNC_RUNTIME_INCLUDE_DIR="${ROOT}/runtime/include"
           ATTNC_TEST_INPUTS_DIR="${unit}/Inputs")
  add_executable(attnc-cuda-tests ${unit}/CudaRuntimeTest.cpp)
  target_link_libraries(attnc-cuda-tests PRIVATE AttncRuntime GTest::gtest
                        GTest::gtest_main)
  target_compile_definitions(attnc-cuda-tests PRIVATE ${defs})
  add_test(NAME cuda-runtime COMMAND attnc-cuda-tests)

  add_executable(attnc-cuda-gpu-tests ${unit}/CudaGpuTest.cpp)
  target_link_libraries(attnc-cuda-gpu-tests PRIVATE AttncRuntime GTest::gtest)
  target_compile_definitions(attnc-cuda-gpu-tests PRIVATE ${defs})
  add_test(NAME cuda-gpu COMMAND attnc-cuda-gpu-tests)
  set_tests_properties(cuda-gpu PROPERTIES LABELS gpu SKIP_RETURN_CODE 77)

  # The same launches against a fake driver that runs the test kernel on
  # the CPU (test/runtime/FakeCudaDriver.cpp, loaded through ATTNC_CUDA_DRIVER):
  # the launcher end to end without a GPU. Only with the CUDA half.
  if(ATTNC_ENABLE_CUDA)
    find_package(CUDAToolkit QUIET)
    set(fake_dir ${CMAKE_CURRENT_BINARY_DIR}/fake-cuda)
    add_library(attnc-fake-cuda SHARED ${unit}/FakeCudaDriver.cpp)
    target_include_directories(attnc-fake-cuda PRIVATE
      ${ROOT}/runtime/include ${CUDAToolkit_INCLUDE_DIRS})
    set_target_properties(attnc-fake-cuda PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${fake_dir})
    add_dependencies(attnc-cuda-gpu-tests attnc-fake-cuda)
    add_test(NAME cuda-fake-driver COMMAND attnc-cuda-gpu-tests)
    set_tests_properties(cuda-fake-driver PROPERTIES ENVIRONMENT
      "ATTNC_CUDA_DRIVER=$<TARGET_FILE:attnc-fake-cuda>;ATTNC_CACHE_DIR=${CMAKE_CURRENT_BINARY_DIR}/fake-cuda-cache")
  endif()
endfunction()
