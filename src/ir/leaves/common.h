#pragma once
// Helpers shared by the leaf kinds' files: reading a module's forward graph
// (recognition), writing TorchScript literals (export), checking attributes
// against tensors (lint). Internal to src/ir.
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <torch/script.h>

#include "compress/ir/leaf.h"

namespace compress::detail {

// ---- recognition ----
// The module's forward graph, inlined and constant-folded, on a private copy.
std::shared_ptr<torch::jit::Graph> leaf_body(const torch::jit::Module& module);
// Only prim::Constant counts: toIValue also answers for some other nodes.
std::optional<c10::IValue> constant_of(torch::jit::Value* v);
std::optional<int64_t> int_of(torch::jit::Value* v);
std::optional<double> double_of(torch::jit::Value* v);
std::optional<bool> bool_of(torch::jit::Value* v);
std::optional<std::vector<int64_t>> ints_of(torch::jit::Value* v);
bool is_none(torch::jit::Value* v);
std::vector<torch::jit::Node*> nodes_of_kind(torch::jit::Graph& g, std::initializer_list<c10::Symbol> kinds);
// A module attribute or class constant (scripted modules keep hyper-parameters there).
std::optional<c10::IValue> module_constant(const torch::jit::Module& m, const std::string& name);
bool has_tensor_attr(const torch::jit::Module& m, const std::string& name);

// The operand must be the given attribute of self (a tensor, or None where
// optional: scripted modules keep a missing bias as a None attribute).
// Returns false when it is something else (then the module is no leaf).
bool match_param(const torch::jit::Module& module, torch::jit::Value* v, torch::jit::Value* self,
                 const std::string& role, bool may_be_none, std::vector<std::string>& roles,
                 bool* present = nullptr);

// Common shape of the simple leaves: forward(self, x) returns core(x, ...).
struct SimpleBody {
  std::shared_ptr<torch::jit::Graph> graph;
  torch::jit::Node* core = nullptr;
  torch::jit::Value* self = nullptr;
};
std::optional<SimpleBody> single_core(const torch::jit::Module& module, std::initializer_list<c10::Symbol> kinds,
                                      size_t data_input);

// ---- export source ----
std::string opt_param(bool present, const std::string& role);  // "self.bias" or "None"
std::string int_list(const std::vector<int64_t>& v);           // "[1, 1]"
const char* py_bool(bool b);
// A double as a TorchScript literal that reads back to the same bits.
std::string float_literal(double v);

// ---- shapes and checks ----
int64_t numel(const Shape& s);
std::string shape_str(const Shape& s);  // "1x3x224x224"
// Error(Failure) "<what>: expected A, found B" unless equal.
void expect_eq(int64_t expected, int64_t found, const std::string& what);
// The tensor of a role; Error(Failure) when the role or the tensor is missing.
const at::Tensor& role_tensor(const Graph& g, const Node& n, const std::string& role);
// The role is present exactly when `present` says so.
void expect_role(const Node& n, const std::string& role, bool present);

}  // namespace compress::detail
