#include <catch2/catch.hpp>

#include "compress/ir/import.h"
#include "test_util.h"

using namespace compress;

TEST_CASE("placeholder import compiles", "[ir]") { SUCCEED(); }

#include "compress/ir/export.h"
// Hidden helper: prints the IR and the exported source of a fixture.
// Run: test_ir "[.dump]" with COMPRESS_DUMP=name
TEST_CASE("dump a fixture", "[.dump]") {
  const char* name = std::getenv("COMPRESS_DUMP");
  if (!name) return;
  auto m = torch::jit::load(compress::testing::fixture(std::string(name) + ".pt"));
  Graph g = import_module(m);
  std::cout << g.to_string() << "\n" << export_source(g) << std::endl;
  auto e = export_module(g);
  e.save("/tmp/exported.pt");
  for (const auto& sub : e.named_modules())
  for (const auto& sub : e.named_children()) std::cout << sub.name << " " << sub.value.type()->str() << "\n";
}
