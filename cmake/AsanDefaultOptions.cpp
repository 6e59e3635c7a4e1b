//===- AsanDefaultOptions.cpp - ASan options built into sanitized binaries ===//
//
// Linked into every executable of an ATTNC_SANITIZE build
// (cmake/SanitizerDefaults.cmake). libMLIR.so and libLLVM.so are not
// instrumented, yet they share llvm::BumpPtrAllocator slabs with our
// instrumented code: MLIR's attribute uniquer allocates storage for our
// attributes (inline, instrumented) and for its own (in libMLIR, not
// instrumented) from one allocator. The instrumented StartNewSlab poisons a
// fresh slab and only instrumented Allocate calls unpoison their piece, so
// libMLIR's later writes into that slab (StringAttr::get's memcpy, which ASan
// intercepts) read as use-after-poison although the memory is owned and
// live. A fuzzer run by hand hit it (`#attn.param` then `#attn.input`).
// allow_user_poisoning=0 turns the allocator's manual poisoning off; heap,
// stack and global checks are unchanged. ASAN_OPTIONS still overrides these.
//
//===----------------------------------------------------------------------===//

extern "C" const char *__asan_default_options() {
  return "allow_user_poisoning=0";
}
