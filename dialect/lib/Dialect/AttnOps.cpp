//===- AttnOps.cpp - Verifiers and folders of the attn ops ----------------===//
//
// The spec op checks its declarations and the types its regions yield; leaf
// ops check that they name a declaration of the enclosing spec. Params fold
// to their values, which is how canonicalisation turns them into constants.
//
//===----------------------------------------------------------------------===//
#include "attnc/Dialect/AttnDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseSet.h"

using namespace mlir;
using namespace mlir::attn;

/// Enum attributes printed as bare keywords: `attn.index q`,
/// `normalize(softmax)`.
template <typename AttrT>
static ParseResult parseKeyword(OpAsmParser &p, AttrT &attr) {
  llvm::SMLoc loc = p.getCurrentLocation();
  StringRef word;
  if (p.parseKeyword(&word))
    return failure();
  using Enum = decltype(std::declval<AttrT>().getValue());
  std::optional<Enum> value = symbolizeEnum<Enum>(word);
  if (!value)
    return p.emitError(loc) << "unknown keyword '" << word << "'";
  attr = AttrT::get(p.getContext(), *value);
  return success();
}

template <typename AttrT>
static void printKeyword(OpAsmPrinter &p, Operation *, AttrT attr) {
  p << stringifyEnum(attr.getValue());
}

#define GET_OP_CLASSES
#include "attnc/Dialect/AttnOps.cpp.inc"

//===----------------------------------------------------------------------===//
// SpecOp
//===----------------------------------------------------------------------===//

ParamAttr SpecOp::lookupParam(StringRef name) {
  if (ArrayAttr params = getParamsAttr())
    for (Attribute a : params)
      if (auto p = dyn_cast<ParamAttr>(a); p && p.getName() == name)
        return p;
  return {};
}

InputAttr SpecOp::lookupInput(StringRef name) {
  if (ArrayAttr inputs = getInputsAttr())
    for (Attribute a : inputs)
      if (auto in = dyn_cast<InputAttr>(a); in && in.getName() == name)
        return in;
  return {};
}

Value SpecOp::getYielded(Region &region) {
  if (region.empty())
    return {};
  if (auto y = dyn_cast<YieldOp>(region.front().getTerminator()))
    return y.getValue();
  return {};
}

/// `expected` null: the region yields nothing (scale_grad, bias_grad).
static LogicalResult verifyRegion(SpecOp op, Region &region, StringRef name,
                                  Type expected) {
  if (region.empty())
    return op.emitOpError() << "'" << name << "' region must not be empty";
  Block &block = region.front();
  if (block.getNumArguments() != 0)
    return op.emitOpError() << "'" << name
                            << "' region must not have arguments";
  if (block.empty() || !isa<YieldOp>(block.back()))
    return op.emitOpError() << "'" << name
                            << "' region must end in attn.yield";
  Value yielded = cast<YieldOp>(block.back()).getValue();
  if (!expected && yielded)
    return op.emitOpError() << "'" << name << "' region must yield nothing";
  if (!expected)
    return success();
  if (!yielded)
    return op.emitOpError() << "'" << name << "' region must yield "
                            << expected;
  Type got = yielded.getType();
  if (got != expected)
    return op.emitOpError() << "'" << name << "' region must yield "
                            << expected << ", got " << got;
  return success();
}

/// The gradient regions are optional (attn-derive-backward adds them);
/// `bias_grad` needs a bias to differentiate.
static LogicalResult verifyGradRegions(SpecOp op) {
  Type f32 = Float32Type::get(op.getContext());
  if (!op.getScoreGrad().empty() &&
      failed(verifyRegion(op, op.getScoreGrad(), "score_grad", f32)))
    return failure();
  if (!op.getScaleGrad().empty() &&
      failed(verifyRegion(op, op.getScaleGrad(), "scale_grad", Type())))
    return failure();
  if (!op.getSinkGrad().empty()) {
    if (op.getSink().empty())
      return op.emitOpError() << "has a 'sink_grad' region but no 'sink'";
    if (failed(verifyRegion(op, op.getSinkGrad(), "sink_grad", Type())))
      return failure();
  }
  if (op.getBiasGrad().empty())
    return success();
  if (op.getBias().empty())
    return op.emitOpError() << "has a 'bias_grad' region but no 'bias'";
  return verifyRegion(op, op.getBiasGrad(), "bias_grad", Type());
}

/// The sink is one logit per row: its regions read no key coordinate.
static LogicalResult verifySinkIsPerRow(SpecOp op, Region &region,
                                        StringRef name) {
  WalkResult r = region.walk([&](IndexOp idx) {
    if (idx.getVar() != IndexVar::kv)
      return WalkResult::advance();
    idx.emitOpError() << "reads 'kv' in the '" << name
                      << "' region, which is one value per query row";
    return WalkResult::interrupt();
  });
  return failure(r.wasInterrupted());
}

LogicalResult SpecOp::verify() {
  llvm::DenseSet<StringAttr> names;
  llvm::DenseSet<StringAttr> intParams;
  if (ArrayAttr params = getParamsAttr())
    for (Attribute a : params) {
      auto p = cast<ParamAttr>(a);
      if (!names.insert(p.getName()).second)
        return emitOpError() << "declares '" << p.getName().getValue()
                             << "' twice";
      if (p.getType().isInteger(64))
        intParams.insert(p.getName());
    }
  if (ArrayAttr inputs = getInputsAttr())
    for (Attribute a : inputs) {
      auto in = cast<InputAttr>(a);
      if (!names.insert(in.getName()).second)
        return emitOpError() << "declares '" << in.getName().getValue()
                             << "' twice";
      for (Attribute dim : in.getShape()) {
        auto s = dyn_cast<StringAttr>(dim);
        if (!s || symbolizeSizeVar(s.getValue()) || intParams.contains(s))
          continue;
        return emitOpError() << "input '" << in.getName().getValue()
                             << "' has dimension '" << s.getValue()
                             << "', which is neither a size nor an int param";
      }
    }
  Type f32 = Float32Type::get(getContext());
  Type i1 = IntegerType::get(getContext(), 1);
  if (failed(verifyRegion(*this, getScale(), "scale", f32)) ||
      failed(verifyRegion(*this, getScore(), "score", f32)) ||
      failed(verifyRegion(*this, getMask(), "mask", i1)))
    return failure();
  if (getNormalize() == NormalizeKind::sigmoid) {
    if (failed(verifyRegion(*this, getBias(), "bias", f32)))
      return failure();
  } else if (!getBias().empty()) {
    return emitOpError() << "only sigmoid normalisation has a 'bias' region";
  }
  if (std::optional<APFloat> p = getDropout()) {
    if (getNormalize() != NormalizeKind::softmax)
      return emitOpError() << "only softmax normalisation has dropout";
    double v = p->convertToDouble();
    if (!(v >= 0 && v < 1))
      return emitOpError() << "dropout probability " << v
                           << " is outside [0, 1)";
  }
  if (!getSink().empty()) {
    if (getNormalize() != NormalizeKind::softmax)
      return emitOpError() << "only softmax normalisation has a 'sink' region";
    if (failed(verifyRegion(*this, getSink(), "sink", f32)) ||
        failed(verifySinkIsPerRow(*this, getSink(), "sink")) ||
        failed(verifySinkIsPerRow(*this, getSinkGrad(), "sink_grad")))
      return failure();
  }
  return verifyGradRegions(*this);
}

bool SpecOp::isGradRegion(Region *region) {
  return region == &getScoreGrad() || region == &getScaleGrad() ||
         region == &getBiasGrad() || region == &getSinkGrad();
}

bool SpecOp::isScaleUniform() {
  WalkResult r = getScale().walk([](Operation *op) {
    return isa<IndexOp, ReadOp>(op) ? WalkResult::interrupt()
                                    : WalkResult::advance();
  });
  return !r.wasInterrupted();
}

//===----------------------------------------------------------------------===//
// FlashOp
//===----------------------------------------------------------------------===//

SpecOp FlashOp::getSpec() {
  Block &body = getBody().front();
  return body.empty() ? SpecOp() : dyn_cast<SpecOp>(body.front());
}

FlashOp FlashOp::wrap(OpBuilder &b, SpecOp spec, int64_t tileQ, int64_t tileK,
                      Type storage, DenseI64ArrayAttr gridPatch) {
  MaskAttr mask = spec.getMaskScheduleAttr();
  auto flash = FlashOp::create(
      b, spec.getLoc(), tileQ, tileK, storage, gridPatch,
      spec.isScaleUniform(), mask && !maskNeedsNoElementCode(mask),
      mask ? int64_t(collectIdsAtoms(mask).size()) : 0);
  Block *body = new Block();
  flash.getBody().push_back(body);
  spec->moveBefore(body, body->end());
  return flash;
}

bool FlashOp::packsQueryHeads() {
  SpecOp spec = getSpec();
  if (getGridPatch() || !spec)
    return false;
  WalkResult w = spec.getMask().walk([](IndexOp op) {
    return op.getVar() == IndexVar::h ? WalkResult::interrupt()
                                      : WalkResult::advance();
  });
  return !w.wasInterrupted();
}

LogicalResult FlashOp::verify() {
  Block &body = getBody().front();
  SpecOp spec = getSpec();
  if (!spec || body.getOperations().size() != 1)
    return emitOpError("body must hold exactly one attn.spec");
  MaskAttr mask = spec.getMaskScheduleAttr();
  if (!mask)
    return emitOpError("needs an analysed spec (mask_schedule, from "
                       "attn-mask-analysis)");
  if (getTileQ() <= 0 || getTileK() <= 0)
    return emitOpError("tile sizes must be positive, got ")
           << getTileQ() << ", " << getTileK();
  if (!isStorageType(getStorage()))
    return emitOpError("storage must be f32, f16 or bf16, got ")
           << getStorage();
  if (std::optional<ArrayRef<int64_t>> g = getGridPatch())
    if (g->size() != 3 || llvm::any_of(*g, [](int64_t x) { return x <= 0; }))
      return emitOpError("grid_patch must be [width, rows, cols], all "
                         "positive");
  if (getScalePerCall() && !spec.isScaleUniform())
    return emitOpError("scale_per_call, but the scale region reads a "
                       "coordinate or an input");
  if (!getMaskOnPartial() && !maskNeedsNoElementCode(mask))
    return emitOpError("mask_on_partial is required: the schedule ")
           << mask << " does not decide every pair";
  int64_t atoms = int64_t(collectIdsAtoms(mask).size());
  if (getPrepass() != atoms)
    return emitOpError("prepass(") << getPrepass() << "), but the schedule has "
                                   << atoms << " ids_eq atoms";
  return success();
}

//===----------------------------------------------------------------------===//
// Leaf ops
//===----------------------------------------------------------------------===//

static SpecOp parentSpec(Operation *op) {
  return op->getParentOfType<SpecOp>();
}

LogicalResult ParamOp::verify() {
  SpecOp spec = parentSpec(*this);
  if (!spec)
    return emitOpError() << "must be inside an attn.spec";
  ParamAttr decl = spec.lookupParam(getName());
  if (!decl)
    return emitOpError() << "reads undeclared param '" << getName() << "'";
  if (decl.getType() != getType())
    return emitOpError() << "param '" << getName() << "' has type "
                         << decl.getType() << ", not " << getType();
  return success();
}

OpFoldResult ParamOp::fold(FoldAdaptor) {
  if (SpecOp spec = parentSpec(*this))
    if (ParamAttr decl = spec.lookupParam(getName()))
      return decl.getValue();
  return {};
}

LogicalResult ScoreOp::verify() {
  SpecOp spec = parentSpec(*this);
  Region *in = (*this)->getParentRegion();
  if (!spec || (in != &spec.getScore() && in != &spec.getScoreGrad()))
    return emitOpError() << "is only allowed in the 'score' region";
  return success();
}

LogicalResult AdjointOp::verify() {
  SpecOp spec = parentSpec(*this);
  if (!spec || !spec.isGradRegion((*this)->getParentRegion()))
    return emitOpError() << "is only allowed in a gradient region";
  return success();
}

ReadOp AccumulateOp::getRead() {
  return getElement().getDefiningOp<ReadOp>();
}

LogicalResult AccumulateOp::verify() {
  SpecOp spec = parentSpec(*this);
  if (!spec || !spec.isGradRegion((*this)->getParentRegion()))
    return emitOpError() << "is only allowed in a gradient region";
  ReadOp read = getRead();
  if (!read || read->getParentRegion() != (*this)->getParentRegion())
    return emitOpError() << "must name an attn.read of its own region";
  return success();
}

LogicalResult ReadOp::verify() {
  SpecOp spec = parentSpec(*this);
  if (!spec)
    return emitOpError() << "must be inside an attn.spec";
  InputAttr decl = spec.lookupInput(getInput());
  if (!decl)
    return emitOpError() << "reads undeclared input '" << getInput() << "'";
  if (static_cast<int64_t>(getIndices().size()) != decl.getRank())
    return emitOpError() << "input '" << getInput() << "' has rank "
                         << decl.getRank() << " but is read with "
                         << getIndices().size() << " indices";
  if (decl.getElementType() != getType())
    return emitOpError() << "input '" << getInput() << "' has element type "
                         << decl.getElementType() << ", not " << getType();
  return success();
}

/// Floor modulo: the result has the divisor's sign (Python's `%`).
static int64_t floorMod(int64_t a, int64_t b) {
  if (b == -1)
    return 0; // also avoids INT64_MIN % -1
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0)))
    r += b;
  return r;
}

OpFoldResult FloorModOp::fold(FoldAdaptor adaptor) {
  APInt rhs;
  if (matchPattern(getRhs(), m_ConstantInt(&rhs)) &&
      (rhs.isOne() || rhs.isAllOnes()))
    return IntegerAttr::get(getType(), 0);
  auto a = dyn_cast_or_null<IntegerAttr>(adaptor.getLhs());
  auto b = dyn_cast_or_null<IntegerAttr>(adaptor.getRhs());
  if (!a || !b || b.getInt() == 0)
    return {};
  return IntegerAttr::get(getType(), floorMod(a.getInt(), b.getInt()));
}
