// Runs a (compressed) model with only LibTorch and the compress::ops runtime.
//   deploy MODEL.pt N,C,H,W
#include <iostream>
#include <sstream>

#include <torch/script.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: deploy MODEL.pt N,C,H,W\n";
    return 2;
  }
  std::vector<int64_t> shape;
  std::stringstream ss(argv[2]);
  for (std::string part; std::getline(ss, part, ',');) shape.push_back(std::stoll(part));
  torch::jit::Module model = torch::jit::load(argv[1]);
  model.eval();
  torch::NoGradGuard no_grad;
  at::Tensor y = model.forward({at::ones(shape)}).toTensor();
  std::cout << "output " << y.sizes() << " sum " << y.sum().item<double>() << "\n";
  return 0;
}
