//===- MaskColumns.cpp - The column view of the mask analysis -------------===//
//
// The column view (per key tile, the query tiles it meets) is the row
// analysis of the transposed mask. analyzeMaskColumns builds, in a temporary
// spec that no one else sees, a copy of the mask region in which the
// coordinates q and kv and the sizes LQ and LK are exchanged (and so are
// LQ / LK in the input declarations, so that `doc_q[q]`, declared [LQ],
// becomes `doc_q[kv]` declared [LK] and is still a coordinate read), then
// runs analyzeMask on it. Every atom of the result therefore reads "q" as
// the key position, "kv" as the query position, and the symbol LQ as the
// key length (LK as the query length); MaskSchedule.h evaluates it with
// transposedSizes.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/MaskAnalysis.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/OwningOpRef.h"

using namespace mlir;
using namespace mlir::attn;

namespace {

StringRef swappedLengthName(StringRef name) {
  if (name == "LQ")
    return "LK";
  if (name == "LK")
    return "LQ";
  return name;
}

/// The input declarations with every LQ dimension read as LK and back.
ArrayAttr transposedInputs(ArrayAttr inputs) {
  if (!inputs)
    return inputs;
  MLIRContext *ctx = inputs.getContext();
  SmallVector<Attribute> out;
  for (Attribute a : inputs) {
    auto decl = dyn_cast<InputAttr>(a);
    if (!decl) {
      out.push_back(a);
      continue;
    }
    SmallVector<Attribute> shape;
    for (Attribute d : decl.getShape()) {
      auto name = dyn_cast<StringAttr>(d);
      shape.push_back(name ? StringAttr::get(ctx, swappedLengthName(name.getValue()))
                           : d);
    }
    out.push_back(InputAttr::get(ctx, decl.getName(), decl.getElementType(),
                                 ArrayAttr::get(ctx, shape)));
  }
  return ArrayAttr::get(ctx, out);
}

/// Exchanges q <-> kv and LQ <-> LK in every op of `region`.
void transposeRegion(Region &region) {
  region.walk([](Operation *op) {
    if (auto idx = dyn_cast<IndexOp>(op)) {
      if (idx.getVar() == IndexVar::q)
        idx.setVar(IndexVar::kv);
      else if (idx.getVar() == IndexVar::kv)
        idx.setVar(IndexVar::q);
    } else if (auto dim = dyn_cast<DimOp>(op)) {
      if (dim.getVar() == SizeVar::LQ)
        dim.setVar(SizeVar::LK);
      else if (dim.getVar() == SizeVar::LK)
        dim.setVar(SizeVar::LQ);
    }
  });
}

} // namespace

MaskAttr mlir::attn::analyzeMaskColumns(SpecOp spec) {
  // A detached spec with the same attributes (params, inputs transposed)
  // and only the mask region filled: the analysis reads nothing else.
  OperationState state(spec.getLoc(), spec->getName());
  state.addAttributes(spec->getAttrs());
  for (unsigned i = 0, e = spec->getNumRegions(); i < e; ++i)
    state.addRegion();
  OwningOpRef<SpecOp> transposed(cast<SpecOp>(Operation::create(state)));
  if (ArrayAttr inputs = spec.getInputsAttr())
    transposed->setInputsAttr(transposedInputs(inputs));
  Region &mask = transposed->getOperation()->getRegion(
      spec.getMask().getRegionNumber());
  IRMapping mapping;
  spec.getMask().cloneInto(&mask, mapping);
  transposeRegion(mask);
  return analyzeMask(*transposed);
}
