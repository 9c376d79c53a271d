// Integer and multiple inputs: dtypes, the ids an input may hold (from the
// embedding it indexes), synthetic inputs, and MACs of sequence layers.
#include <catch2/catch.hpp>

#include <torch/script.h>

#include "compress/analysis/inputs.h"
#include "compress/analysis/profile.h"
#include "compress/error.h"
#include "compress/io.h"
#include "compress/ir/import.h"
#include "test_util.h"

using compress::testing::fixture;

namespace {

// A traced text classifier of tests/fixtures with the example input it was
// traced with: token ids int64 [2, 12] (a saved trace keeps no input shapes).
compress::Graph text_graph(const std::string& name) {
  compress::Graph g = compress::import_module(compress::load_module(fixture(name + ".pt")));
  g.set_example_inputs({compress::InputSpec{{2, 12}, at::kLong}});
  return g;
}

const compress::NodeProfile& node_with_op(const compress::ModelProfile& p, const std::string& op) {
  for (const auto& n : p.nodes)
    if (n.op == op) return n;
  FAIL("no node " << op);
  throw;
}

}  // namespace

TEST_CASE("dtype names parse, and a word that is no dtype is refused naming the option", "[sequence][inputs]") {
  CHECK(compress::parse_dtype("int64", "--input-dtype") == at::kLong);
  CHECK(compress::parse_dtype("long", "--input-dtype") == at::kLong);
  CHECK(compress::parse_dtype("float32", "--input-dtype") == at::kFloat);
  CHECK(compress::parse_dtype("uint8", "--input-dtype") == at::kByte);
  CHECK(compress::dtype_name(at::kLong) == "int64");
  CHECK_THROWS_WITH(compress::parse_dtype("tensor", "--input-dtype"),
                    Catch::Contains("--input-dtype: 'tensor' is not a tensor dtype"));
}

TEST_CASE("token ids of a traced text model are bounded by the embedding they index", "[sequence][inputs]") {
  compress::Graph g = text_graph("lstm_text");  // nn.Embedding(100, 16)
  CHECK(compress::embedding_rows_of_input(g, 0) == std::optional<int64_t>(100));
  const compress::IntRange r = compress::integer_input_range(g, 0);
  CHECK(r.lo == 0);
  CHECK(r.hi == 100);
  // Through aten::embedding_bag too.
  compress::Graph bag = text_graph("bag_text");
  CHECK(compress::embedding_rows_of_input(bag, 0) == std::optional<int64_t>(100));
  // A range inside the table is kept; one that leaves it is refused.
  CHECK(compress::integer_input_range(g, 0, compress::IntRange{5, 50}).hi == 50);
  CHECK_THROWS_WITH(compress::integer_input_range(g, 0, compress::IntRange{0, 500}),
                    Catch::Contains("indexes an embedding of 100 rows"));
  CHECK_THROWS_WITH(compress::integer_input_range(g, 0, compress::IntRange{7, 7}), Catch::Contains("LO < HI"));
}

TEST_CASE("synthesised inputs have the example dtypes, valid ids, and repeat for a seed", "[sequence][inputs]") {
  compress::Graph g = text_graph("gru_text");
  g.set_example_inputs({compress::InputSpec{{4, 30}, at::kLong}});
  auto a = compress::synthesize_inputs(g, 3), b = compress::synthesize_inputs(g, 3), c = compress::synthesize_inputs(g, 4);
  REQUIRE(a.size() == 1);
  CHECK(a[0].scalar_type() == at::kLong);
  CHECK(a[0].sizes() == at::IntArrayRef({4, 30}));
  CHECK(a[0].min().item<int64_t>() >= 0);
  CHECK(a[0].max().item<int64_t>() < 100);
  CHECK(a[0].max().item<int64_t>() > 50);  // drawn over the table, not zeros
  CHECK(a[0].equal(b[0]));
  CHECK(!a[0].equal(c[0]));
  // The model runs on them.
  auto m = compress::load_module(fixture("gru_text.pt"));
  m.eval();
  torch::NoGradGuard no_grad;
  CHECK(m.forward({a[0]}).toTensor().sizes() == at::IntArrayRef({4, 5}));
}

TEST_CASE("MACs of LSTM and GRU layers count both projections per step, embeddings none", "[sequence][inputs]") {
  // lstm_text: Embedding(100, 16) -> LSTM(16, 32) -> Linear(32, 5), tokens [2, 12].
  compress::Graph lstm = text_graph("lstm_text");
  compress::ModelProfile p = compress::profile_model(lstm);
  const int64_t steps = 2 * 12;
  CHECK(node_with_op(p, "aten::lstm").macs == steps * (4 * 32 * 16 + 4 * 32 * 32));
  CHECK(node_with_op(p, "aten::lstm").params == 4 * 32 * 16 + 4 * 32 * 32 + 2 * 4 * 32);
  CHECK(node_with_op(p, "nn.Embedding").macs == 0);
  CHECK(p.carried_ops.count("aten::lstm") == 0);
  // A longer sequence scales them.
  compress::ModelProfile longer = compress::profile_model(lstm, {{2, 24}}, at::kLong);
  CHECK(node_with_op(longer, "aten::lstm").macs == 2 * node_with_op(p, "aten::lstm").macs);

  // gru_text: GRU(16, 32, num_layers=2): layer 1 reads the 32 features of layer 0.
  compress::ModelProfile g = compress::profile_model(text_graph("gru_text"));
  CHECK(node_with_op(g, "aten::gru").macs == steps * (3 * 32 * 16 + 3 * 32 * 32 + 3 * 32 * 32 + 3 * 32 * 32));
}

TEST_CASE("MACs of a fused transformer encoder layer: attention and feed-forward", "[sequence][inputs]") {
  // transformer_text: 2 x TransformerEncoderLayer(32, 4 heads, 64), traced in
  // eval mode without autograd: PyTorch's fused layer op.
  compress::ModelProfile p = compress::profile_model(text_graph("transformer_text"));
  int64_t layers = 0;
  const int64_t tokens = 24, E = 32, T = 12, F = 64;
  for (const auto& n : p.nodes)
    if (n.op == "aten::_transformer_encoder_layer_fwd") {
      ++layers;
      CHECK(n.macs == 4 * tokens * E * E + 2 * tokens * T * E + tokens * 2 * E * F);
    }
  CHECK(layers == 2);
}
