#pragma once
// Each subcommand lives in cmd_<name>.cpp and is listed in main.cpp's table.
// A command returns the process exit code: 0 ok, 1 the job failed, 2 bad input
// (main.cpp turns compress::Error into one line on stderr and that code).
namespace compress::cli {

int cmd_inspect(int argc, char** argv);
int cmd_convert(int argc, char** argv);
int cmd_prune(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_qat(int argc, char** argv);
// `compress quantize --dynamic ...` (cmd_quantize_dynamic.cpp).
bool wants_dynamic_quantization(int argc, char** argv);
int cmd_quantize_dynamic(int argc, char** argv);
int cmd_distill(int argc, char** argv);
int cmd_pdd(int argc, char** argv);
int cmd_pqk(int argc, char** argv);
int cmd_sparsify(int argc, char** argv);
int cmd_amc(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_report(int argc, char** argv);

}  // namespace compress::cli
