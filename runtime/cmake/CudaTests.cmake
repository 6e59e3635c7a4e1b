# The CUDA runtime's tests, registered the same way by the full build
# (test/CMakeLists.txt) and by the runtime's standalone build (the GPU
# machine has no LLVM). ROOT is the repository root.
function(attnc_add_cuda_tests ROOT)
  set(unit ${ROOT}/test/unit)
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
endfunction()
