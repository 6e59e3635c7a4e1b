// RUN: %attn-opt %s --split-input-file --verify-diagnostics
// Every verifier of the attn dialect, one defect per case.

// expected-error @+1 {{param 'x' must have type i64, f32 or i1, got 'f64'}}
attn.spec @a normalize(softmax) params [#attn.param<"x" : f64>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{param needs a name}}
attn.spec @a normalize(softmax) params [#attn.param<"" : i64 = 1>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{expected true or false}}
attn.spec @a normalize(softmax) params [#attn.param<"x" : i1 = 3>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{input 'x' must have element type i64, f32 or i1, got 'f16'}}
attn.spec @a normalize(softmax) inputs [#attn.input<"x" : f16 [LQ]>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{input 'x' must have rank >= 1}}
attn.spec @a normalize(softmax) inputs [#attn.input<"x" : f32 []>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{input 'x' has a non-positive extent 0}}
attn.spec @a normalize(softmax) inputs [#attn.input<"x" : f32 [0]>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{input needs a name}}
attn.spec @a normalize(softmax) inputs [#attn.input<"" : f32 [LQ]>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{declares 'x' twice}}
attn.spec @a normalize(softmax) params [#attn.param<"x" : i64 = 1>] inputs [#attn.input<"x" : f32 [LQ]>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{declares 'x' twice}}
attn.spec @a normalize(softmax) params [#attn.param<"x" : i64 = 1>, #attn.param<"x" : f32 = 1.0>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{input 'x' has dimension 'c', which is neither a size nor an int param}}
attn.spec @a normalize(softmax) params [#attn.param<"c" : f32 = 1.0>] inputs [#attn.input<"x" : f32 [c]>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{'mask' region must yield 'i1', got 'i64'}}
attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %q = attn.index q
  attn.yield %q : i64
}

// -----

// expected-error @+1 {{'scale' region must yield 'f32', got 'i1'}}
attn.spec @a normalize(softmax) scale {
  %t = arith.constant true
  attn.yield %t : i1
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{'score' region must not have arguments}}
attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
^bb0(%x: f32):
  attn.yield %x : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{'score' region must end in attn.yield}}
attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{'bias' region must not be empty}}
attn.spec @a normalize(sigmoid) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{only sigmoid normalisation has a 'bias' region}}
attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
} bias {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
}

// -----

attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  // expected-error @+1 {{reads undeclared param 'w'}}
  %w = attn.param "w" : i64
  %z = arith.constant 0 : i64
  %c = arith.cmpi sge, %w, %z : i64
  attn.yield %c : i1
}

// -----

attn.spec @a normalize(softmax) params [#attn.param<"w" : i64 = 3>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  // expected-error @+1 {{param 'w' has type 'i64', not 'i1'}}
  %w = attn.param "w" : i1
  attn.yield %w : i1
}

// -----

attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  // expected-error @+1 {{is only allowed in the 'score' region}}
  %s = attn.score
  %z = arith.constant 0.0 : f32
  %c = arith.cmpf ogt, %s, %z : f32
  attn.yield %c : i1
}

// -----

attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %q = attn.index q
  // expected-error @+1 {{reads undeclared input 'ids'}}
  %x = attn.read "ids"[%q] : i1
  attn.yield %x : i1
}

// -----

attn.spec @a normalize(softmax) inputs [#attn.input<"ids" : i1 [LQ]>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %q = attn.index q
  // expected-error @+1 {{input 'ids' has rank 1 but is read with 2 indices}}
  %x = attn.read "ids"[%q, %q] : i1
  attn.yield %x : i1
}

// -----

attn.spec @a normalize(softmax) inputs [#attn.input<"ids" : i64 [LQ]>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %q = attn.index q
  // expected-error @+1 {{input 'ids' has element type 'i64', not 'i1'}}
  %x = attn.read "ids"[%q] : i1
  attn.yield %x : i1
}

// -----

module {
  %t = arith.constant true
  // expected-error @+1 {{expects parent op 'attn.spec'}}
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{'attn.param' op must be inside an attn.spec}}
%w = attn.param "w" : i64

// -----

// expected-error @+1 {{all_of needs at least two terms}}
attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<all_of(always)>} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{invalid mask bound "kv + 1"}}
attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<kv_ge "kv + 1">} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{unknown mask formula node 'sometimes'}}
attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<sometimes>} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{unknown keyword 'relu'}}
attn.spec @a normalize(relu) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  // expected-error @+1 {{unknown keyword 'w'}}
  %q = attn.index w
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{ids_eq reads its first input at q and its second at kv}}
attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<ids_eq "x"[kv] "y"[q]>} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{ids_eq reads its first input at q and its second at kv, once each}}
attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<ids_eq "x"[q] "y"[kv, kv]>} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{ids_eq index 'row' is not a coordinate}}
attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<ids_eq "x"[q] "y"[row]>} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{mask atom reads are indexed by b, h, hkv or q, not 'kv'}}
attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<kv_le "r0" reads("len"[kv])>} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{a mask atom read is indexed by q at most once}}
attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<kv_le "r0" reads("len"[q, q])>} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// A bound that names a read the atom does not list.
// expected-error @+1 {{invalid mask bound "r0 - 1"}}
attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<kv_le "r0 - 1">} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{'attn.flash' op body must hold exactly one attn.spec}}
attn.flash tiles(32, 64) storage(f32) prepass(0) {
  attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<always>} scale {
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
  attn.spec @b normalize(softmax) attributes {mask_schedule = #attn.mask<always>} scale {
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// expected-error @+1 {{'attn.flash' op needs an analysed spec (mask_schedule, from attn-mask-analysis)}}
attn.flash tiles(32, 64) storage(f32) prepass(0) {
  attn.spec @a normalize(softmax)  scale {
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// expected-error @+1 {{'attn.flash' op tile sizes must be positive, got 0, 64}}
attn.flash tiles(0, 64) storage(f32) prepass(0) {
  attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<always>} scale {
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// expected-error @+1 {{'attn.flash' op storage must be f32, f16 or bf16, got 'f64'}}
attn.flash tiles(32, 64) storage(f64) prepass(0) {
  attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<always>} scale {
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// expected-error @+1 {{'attn.flash' op grid_patch must be [width, rows, cols], all positive}}
attn.flash tiles(32, 64) storage(f32) grid_patch [64, 4] prepass(0) {
  attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<always>} scale {
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// expected-error @+1 {{'attn.flash' op mask_on_partial is required: the schedule #attn.mask<kv_le "q"> does not decide every pair}}
attn.flash tiles(32, 64) storage(f32) prepass(0) {
  attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<kv_le "q">} scale {
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// expected-error @+1 {{'attn.flash' op prepass(2), but the schedule has 0 ids_eq atoms}}
attn.flash tiles(32, 64) storage(f32) prepass(2) {
  attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<always>} scale {
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// expected-error @+1 {{'attn.flash' op scale_per_call, but the scale region reads a coordinate or an input}}
attn.flash tiles(32, 64) storage(f32) scale_per_call prepass(0) {
  attn.spec @a normalize(softmax) attributes {mask_schedule = #attn.mask<always>} scale {
    %h = attn.index h
    %f = arith.sitofp %h : i64 to f32
    attn.yield %f : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// The gradient regions (attn-derive-backward) and their ops.

attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  // expected-error @+1 {{'attn.adjoint' op is only allowed in a gradient region}}
  %a = attn.adjoint
  attn.yield %a : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
} score_grad {
  %s = attn.score
  %a = attn.adjoint
  // expected-error @+1 {{'attn.accumulate' op must name an attn.read of its own region}}
  attn.accumulate %s, %a : f32
  attn.yield %a : f32
}

// -----

// expected-error @+1 {{'score_grad' region must yield 'f32'}}
attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
} score_grad {
  attn.yield
}

// -----

// expected-error @+1 {{'scale_grad' region must yield nothing}}
attn.spec @a normalize(softmax) inputs [#attn.input<"t" : f32 [HQ]>] scale {
  %h = attn.index h
  %x = attn.read "t"[%h] : f32
  attn.yield %x : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
} scale_grad {
  %a = attn.adjoint
  attn.yield %a : f32
}

// -----

// expected-error @+1 {{has a 'bias_grad' region but no 'bias'}}
attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
} bias_grad {
  attn.yield
}

// -----

// expected-error @+1 {{'score' region must yield 'f32'}}
attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  attn.yield
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

// expected-error @+1 {{only softmax normalisation has a 'sink' region}}
attn.spec @a normalize(sigmoid) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
} bias {
  %z = arith.constant 0.0 : f32
  attn.yield %z : f32
} sink {
  %z = arith.constant 0.0 : f32
  attn.yield %z : f32
}

// -----

attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
} sink {
  // expected-error @+1 {{reads 'kv' in the 'sink' region, which is one value per query row}}
  %kv = attn.index kv
  %f = arith.sitofp %kv : i64 to f32
  attn.yield %f : f32
}

// -----

// expected-error @+1 {{'sink' region must yield 'f32', got 'i1'}}
attn.spec @a normalize(softmax) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
} sink {
  %t = arith.constant true
  attn.yield %t : i1
}
