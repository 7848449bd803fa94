// Trains GR-PHI's TinyNet on Fashion-MNIST with the library's float training and reports, per epoch, the
// wall time, the training loss and the test accuracy and loss: the C++ side of scripts/torch_tinynet, which
// times the same model, batch and optimizer in PyTorch.
//
//   build/experiments/sqbench_tinynet [--epochs N] [--threads T] [--seed S] [--train-n N] [--hidden 512,256]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sqb/error.hpp"
#include "sqb/task.hpp"

int main(int argc, char** argv) {
  try {
    std::size_t epochs = 10, train_n = 0;
    std::uint64_t seed = 0;
    int threads = 0;
    std::string hidden = "256";
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string k = argv[i], v = argv[i + 1];
      if (k == "--epochs")
        epochs = std::stoul(v);
      else if (k == "--threads")
        threads = std::stoi(v);
      else if (k == "--seed")
        seed = std::stoull(v);
      else if (k == "--train-n")
        train_n = std::stoul(v);
      else if (k == "--hidden")
        hidden = v;
      else
        throw sqb::Error("unknown option " + k + " (valid: --epochs --threads --seed --train-n --hidden)");
    }
    if (argc % 2 == 0) throw sqb::Error(std::string("option ") + argv[argc - 1] + " has no value");
    if (threads > 0 && !sqb::task::set_blas_threads(threads))
      std::fprintf(stderr, "cannot set BLAS threads\n");
    const sqb::task::BlasInfo b = sqb::task::blas_info();
    std::printf("blas %s threads %d\n", b.library.c_str(), b.threads);
    const auto t0 = std::chrono::steady_clock::now();
    sqb::task::DataSplit data = sqb::task::load_dataset();
    if (train_n) data.train = data.train.head(train_n);
    std::printf("load %.2f s (%zu train, %zu test)\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                data.train.count, data.test.count);
    const sqb::task::TaskSpec spec = sqb::task::parse_task_spec("fashion_mnist hidden=" + hidden);
    sqb::task::Mlp m = sqb::task::init_mlp(sqb::task::model_spec(spec, data.train.features()), seed);
    sqb::task::TrainOptions o;
    o.epochs = epochs;
    o.seed = seed;
    double train_s = 0;
    auto mark = std::chrono::steady_clock::now();
    o.on_epoch = [&](std::size_t e, double loss) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - mark).count();
      train_s += s;
      const sqb::task::Evaluation ev = sqb::task::evaluate(m, data.test);
      std::printf("epoch %zu  %.3f s  train_loss %.4f  test_acc %.4f  test_loss %.4f\n", e + 1, s, loss,
                  ev.accuracy, ev.loss);
      std::fflush(stdout);
      mark = std::chrono::steady_clock::now();  // the evaluation is not training time
    };
    sqb::task::train(m, data.train, o);
    std::printf("total %.2f s training, %.3f s/epoch\n", train_s, train_s / static_cast<double>(epochs));
  } catch (const sqb::Error& e) {
    std::fprintf(stderr, "sqbench_tinynet: %s\n", e.what());
    return 2;
  }
}
