#include "compress/analysis/inputs.h"

#include <algorithm>
#include <deque>
#include <set>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "compress/error.h"

namespace compress {

namespace {

const c10::Symbol kEmbedding = c10::Symbol::fromQualString("aten::embedding");
const c10::Symbol kEmbeddingBag = c10::Symbol::fromQualString("aten::embedding_bag");

bool integral(at::ScalarType t) { return at::isIntegralType(t, /*includeBool=*/false); }

// Rows of the table `n` looks `v` up in, if `n` is an embedding reading `v` as its indices.
std::optional<int64_t> table_rows(const Graph& g, const Node& n, ValueId v) {
  if (n.is_leaf(LeafKind::Embedding) && n.input(0).is_value(v))
    return std::get<EmbeddingAttrs>(n.attrs).num_embeddings;
  if ((n.is_op(kEmbedding) || n.is_op(kEmbeddingBag)) && n.inputs().size() > 1 && n.input(1).is_value(v)) {
    const Arg& w = n.input(0);
    if (w.kind == Arg::Kind::Param) return g.param(w.param).size(0);
    if (w.is_value() && g.value(w.value).is_tensor() && !g.shape(w.value).empty()) return g.shape(w.value)[0];
  }
  return std::nullopt;
}

}  // namespace

std::optional<int64_t> embedding_rows_of_input(const Graph& g, size_t index) {
  if (index >= g.inputs().size()) failure("embedding_rows_of_input: no input " + std::to_string(index));
  g.infer_shapes();
  std::optional<int64_t> rows;
  std::deque<ValueId> todo{g.inputs()[index]};
  std::set<ValueId> seen{g.inputs()[index]};
  while (!todo.empty()) {
    const ValueId v = todo.front();
    todo.pop_front();
    for (Node* n : g.users(v)) {
      if (auto r = table_rows(g, *n, v)) {
        rows = rows ? std::min(*rows, *r) : *r;
        continue;
      }
      // Ops that keep the ids integer (reshape, slice, to(long), ...) pass them on.
      for (ValueId out : n->outputs())
        if (g.value(out).is_tensor() && integral(g.dtype(out)) && seen.insert(out).second) todo.push_back(out);
    }
  }
  return rows;
}

IntRange integer_input_range(const Graph& g, size_t index, const std::optional<IntRange>& given) {
  const std::optional<int64_t> rows = embedding_rows_of_input(g, index);
  const std::string input = "input " + std::to_string(index) + " (" + g.name_of(g.inputs()[index]) + ")";
  if (!given) return IntRange{0, rows.value_or(1)};
  if (given->lo < 0 || given->hi <= given->lo)
    bad_input("--input-range " + std::to_string(given->lo) + "," + std::to_string(given->hi) +
              ": expected 0 <= LO < HI (values are drawn from LO..HI-1)");
  if (rows && given->hi > *rows)
    bad_input("--input-range " + std::to_string(given->lo) + "," + std::to_string(given->hi) + ": " + input +
              " indexes an embedding of " + std::to_string(*rows) + " rows (valid ids 0.." + std::to_string(*rows - 1) +
              ")");
  return *given;
}

InputSynthesizer::InputSynthesizer(const Graph& g, const std::optional<IntRange>& given_range)
    : specs_(g.example_inputs()) {
  for (size_t i = 0; i < specs_.size(); ++i)
    ranges_.push_back(integral(specs_[i].dtype) ? integer_input_range(g, i, given_range) : IntRange{});
}

std::vector<at::Tensor> InputSynthesizer::operator()(uint64_t seed, std::optional<int64_t> batch) const {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < specs_.size(); ++i) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + i);
    const InputSpec& s = specs_[i];
    Shape shape = s.shape;
    if (batch && !shape.empty()) shape[0] = *batch;
    if (at::isFloatingType(s.dtype)) {
      out.push_back(at::randn(shape, gen).to(s.dtype));
    } else if (s.dtype == at::kBool) {
      out.push_back(at::randint(0, 2, shape, gen).to(at::kBool));
    } else {
      out.push_back(at::randint(ranges_[i].lo, ranges_[i].hi, shape, gen, at::TensorOptions().dtype(s.dtype)));
    }
  }
  return out;
}

std::vector<at::Tensor> synthesize_inputs(const Graph& g, uint64_t seed, const std::optional<IntRange>& given_range) {
  return InputSynthesizer(g, given_range)(seed);
}

at::ScalarType parse_dtype(const std::string& text, const std::string& what) {
  static const std::vector<std::pair<std::string, at::ScalarType>> names = {
      {"float", at::kFloat},  {"float32", at::kFloat}, {"float64", at::kDouble}, {"double", at::kDouble},
      {"half", at::kHalf},    {"float16", at::kHalf},  {"bfloat16", at::kBFloat16}, {"int8", at::kChar},
      {"uint8", at::kByte},   {"int16", at::kShort},   {"int32", at::kInt},     {"int", at::kInt},
      {"int64", at::kLong},   {"long", at::kLong},     {"bool", at::kBool}};
  for (const auto& [name, t] : names)
    if (text == name) return t;
  bad_input(what + ": '" + text +
            "' is not a tensor dtype (expected float32, float64, float16, bfloat16, int8, uint8, int16, int32, int64 or "
            "bool)");
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kShort: return "int16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

}  // namespace compress
