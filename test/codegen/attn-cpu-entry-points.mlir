// RUN: attn-opt %s --split-input-file --attn-cpu-entry-points --verify-diagnostics | FileCheck %s
// Twice: a kernel that has its entry point keeps it (one entry, not two).
// RUN: attn-opt %s --split-input-file --attn-cpu-entry-points --attn-cpu-entry-points --verify-diagnostics | FileCheck %s --check-prefix=TWICE
// TWICE-COUNT-1: llvm.func @attnc_kernel_tiny(
// TWICE-NOT:     llvm.func @attnc_kernel_tiny(

// Every lowered kernel @attn_<name> gets the C entry point
// attnc_kernel_<name>(buffers, meta, status, begin, end) of KernelABI.h,
// which loads each attnc_buffer's five fields, passes meta and status as
// descriptors, and calls the kernel, now internal. Here a kernel with no
// buffers at all: only meta, status and the task range.
// CHECK-LABEL: llvm.func internal @attn_tiny(
// CHECK-LABEL: llvm.func @attnc_kernel_tiny(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64)
// CHECK:         llvm.call @attn_tiny(
// CHECK-NEXT:    llvm.return
module {
  llvm.func @attn_tiny(%m0: !llvm.ptr, %m1: !llvm.ptr, %m2: i64, %m3: i64, %m4: i64,
                       %s0: !llvm.ptr, %s1: !llvm.ptr, %s2: i64, %s3: i64, %s4: i64,
                       %begin: i64, %end: i64) {
    llvm.return
  }
}

// -----

// A function that is not a lowered kernel's shape is an error.
module {
  // expected-error @+1 {{unexpected signature of a lowered kernel}}
  llvm.func @attn_odd(%a: !llvm.ptr, %b: i64) {
    llvm.return
  }
}
