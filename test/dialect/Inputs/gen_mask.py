# Writes an attn.spec whose mask_schedule is a generated #attn.mask formula:
#   gen_mask.py flat N    any_of with N atoms
#   gen_mask.py nest N    N nested any_of
#   gen_mask.py bound N   one atom whose bound has N additions
import sys

mode, n = sys.argv[1], int(sys.argv[2])
if mode == "flat":
    mask = "any_of(" + ", ".join('kv_le "q - %d"' % i for i in range(n)) + ")"
elif mode == "nest":
    mask = "any_of(never, " * n + "always" + ")" * n
elif mode == "bound":
    mask = 'kv_le "q' + " + 1" * n + '"'
else:
    sys.exit("unknown mode " + mode)
print("attn.spec @w normalize(softmax) attributes {mask_schedule = #attn.mask<%s>} scale {" % mask)
print("  %one = arith.constant 1.0 : f32")
print("  attn.yield %one : f32")
print("} score {")
print("  %s = attn.score")
print("  attn.yield %s : f32")
print("} mask {")
print("  %t = arith.constant true")
print("  attn.yield %t : i1")
print("}")
