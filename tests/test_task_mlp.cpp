// The MLP's math: the hand-written backward pass against central finite differences (the same templated
// formulas run in float64), the per-example Fisher formula against per-example gradients, AdamW against hand
// and PyTorch values, torch.nn.Linear's initialisation, the task spec, model files and the BLAS report.

#include <catch2/catch.hpp>

#include <bit>
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_real_distribution.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "npy_helpers.hpp"
#include "sqb/error.hpp"
#include "sqb/npy.hpp"
#include "sqb/task.hpp"
#include "task/mlp_core.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
using sqb::task::detail::GradRef;
using sqb::task::detail::LayerRef;
using sqb::task::detail::Net;
using TempDir = sqbtest::ScratchDir;

namespace {

// A small float64 network with random parameters and a batch of random inputs.
struct SmallNet {
  std::vector<std::size_t> sizes;
  bool bias = false;
  std::vector<std::vector<double>> w, b;
  arma::mat x;
  std::vector<std::uint8_t> labels;

  SmallNet(std::vector<std::size_t> s, bool with_bias, std::size_t batch, std::uint64_t seed)
      : sizes(std::move(s)), bias(with_bias) {
    boost::random::mt19937_64 eng(seed);
    boost::random::uniform_real_distribution<double> u(-1, 1);
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
      w.emplace_back(sizes[l] * sizes[l + 1]);
      for (double& v : w.back())
        v = u(eng);
      b.emplace_back(bias ? sizes[l + 1] : 0);
      for (double& v : b.back())
        v = 0.3 * u(eng);
    }
    x.set_size(sizes[0], batch);
    for (double& v : x)
      v = u(eng);
    for (std::size_t j = 0; j < batch; ++j)
      labels.push_back(static_cast<std::uint8_t>(j % sizes.back()));
  }

  std::vector<LayerRef<double>> refs() const {
    std::vector<LayerRef<double>> r;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l)
      r.push_back({w[l].data(), bias ? b[l].data() : nullptr, sizes[l], sizes[l + 1]});
    return r;
  }
  double mean_loss() const {
    Net<double> net;
    return net.forward(refs(), x, labels) / static_cast<double>(x.n_cols);
  }
};

}  // namespace

TEST_CASE("mlp: the backward pass matches central finite differences in float64", "[task][mlp]") {
  const bool bias = GENERATE(false, true);
  const auto sizes = GENERATE(std::vector<std::size_t>{6, 5, 4}, std::vector<std::size_t>{7, 6, 5, 3},
                              std::vector<std::size_t>{4, 3});
  INFO("bias " << bias << ", layers " << sizes.size() - 1);
  SmallNet n(sizes, bias, 5, 42 + sizes.size());
  Net<double> net;
  std::vector<std::vector<double>> gw(n.w.size()), gb(n.w.size());
  std::vector<GradRef<double>> grads;
  for (std::size_t l = 0; l < n.w.size(); ++l) {
    gw[l].assign(n.w[l].size(), 0);
    gb[l].assign(n.b[l].size(), 0);
    grads.push_back({gw[l].data(), bias ? gb[l].data() : nullptr});
  }
  const double loss = net.forward(n.refs(), n.x, n.labels);
  net.backward(n.refs(), n.x, n.labels, 1.0 / static_cast<double>(n.x.n_cols), grads);
  CHECK_THAT(loss / 5, WithinRel(n.mean_loss(), 1e-14));

  // Central differences: error O(h^2) ~ 1e-10 at h = 1e-5; the kinks of ReLU are a measure-zero set that
  // random inputs do not hit within h.
  const double h = 1e-5;
  std::size_t checked = 0;
  auto check_param = [&](double& p, double analytic) {
    const double keep = p;
    p = keep + h;
    const double up = n.mean_loss();
    p = keep - h;
    const double down = n.mean_loss();
    p = keep;
    const double numeric = (up - down) / (2 * h);
    CHECK_THAT(analytic, WithinAbs(numeric, 1e-8));
    ++checked;
  };
  for (std::size_t l = 0; l < n.w.size(); ++l) {
    for (std::size_t i = 0; i < n.w[l].size(); ++i)
      check_param(n.w[l][i], gw[l][i]);
    for (std::size_t i = 0; i < n.b[l].size(); ++i)
      check_param(n.b[l][i], gb[l][i]);
  }
  CHECK(checked > 10);
  // Not all zero (the check could not fail otherwise).
  double norm = 0;
  for (const auto& g : gw)
    for (const double v : g)
      norm += v * v;
  CHECK(norm > 1e-6);
}

TEST_CASE("mlp: add_fisher is the sum of squared per-example gradients", "[task][mlp]") {
  const bool bias = GENERATE(false, true);
  SmallNet n({6, 5, 4, 3}, bias, 7, 9);
  Net<double> net;
  std::vector<std::vector<double>> acc(n.w.size());
  std::vector<double*> ptrs;
  for (std::size_t l = 0; l < n.w.size(); ++l) {
    acc[l].assign(n.w[l].size(), 0);
    ptrs.push_back(acc[l].data());
  }
  net.forward(n.refs(), n.x, n.labels);
  net.add_fisher(n.refs(), n.x, n.labels, ptrs);

  std::vector<std::vector<double>> expect(n.w.size());
  for (std::size_t l = 0; l < n.w.size(); ++l)
    expect[l].assign(n.w[l].size(), 0);
  for (std::size_t j = 0; j < n.x.n_cols; ++j) {
    const arma::mat xj = n.x.col(j);
    const std::vector<std::uint8_t> lj{n.labels[j]};
    std::vector<std::vector<double>> gw(n.w.size()), gb(n.w.size());
    std::vector<GradRef<double>> grads;
    for (std::size_t l = 0; l < n.w.size(); ++l) {
      gw[l].assign(n.w[l].size(), 0);
      gb[l].assign(n.b[l].size(), 0);
      grads.push_back({gw[l].data(), bias ? gb[l].data() : nullptr});
    }
    Net<double> one;
    one.forward(n.refs(), xj, lj);
    one.backward(n.refs(), xj, lj, 1.0, grads);
    for (std::size_t l = 0; l < n.w.size(); ++l)
      for (std::size_t i = 0; i < gw[l].size(); ++i)
        expect[l][i] += gw[l][i] * gw[l][i];
  }
  for (std::size_t l = 0; l < n.w.size(); ++l)
    for (std::size_t i = 0; i < acc[l].size(); ++i)
      CHECK_THAT(acc[l][i], WithinAbs(expect[l][i], 1e-12 + 1e-12 * expect[l][i]));
}

TEST_CASE("mlp: the float32 instantiation agrees with float64 to float precision", "[task][mlp]") {
  SmallNet n({8, 6, 5}, true, 4, 3);
  std::vector<std::vector<float>> wf, bf;
  for (std::size_t l = 0; l < n.w.size(); ++l) {
    wf.emplace_back(n.w[l].begin(), n.w[l].end());
    bf.emplace_back(n.b[l].begin(), n.b[l].end());
  }
  std::vector<LayerRef<float>> refs;
  for (std::size_t l = 0; l < n.w.size(); ++l)
    refs.push_back({wf[l].data(), bf[l].data(), n.sizes[l], n.sizes[l + 1]});
  const arma::fmat xf = arma::conv_to<arma::fmat>::from(n.x);
  Net<float> nf;
  Net<double> nd;
  CHECK_THAT(nf.forward(refs, xf, n.labels), WithinRel(nd.forward(n.refs(), n.x, n.labels), 1e-5));
  for (arma::uword i = 0; i < nd.logits().n_elem; ++i)
    CHECK_THAT(nf.logits()[i], WithinAbs(nd.logits()[i], 1e-5));
}

TEST_CASE("mlp: AdamW matches hand-computed values and PyTorch 1.13", "[task][mlp]") {
  const sqb::task::AdamW opt;  // torch defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01
  std::vector<float> p{1.0f, -2.0f, 0.5f, 0.0f}, m(4, 0.0f), v(4, 0.0f);
  opt.step(p, m, v, std::vector<float>{0.5f, 0.25f, -1e-3f, 0.0f}, 1);
  // By hand, p[0]: decay 1 - 1e-5 -> 0.99999; m = 0.05, v = 0.00025; step lr/(1-0.9) = 0.01;
  // denominator sqrt(0.00025)/sqrt(0.001) + 1e-8 = 0.5 + 1e-8; p = 0.99999 - 0.01 * 0.05 / 0.5 = 0.99899.
  CHECK_THAT(p[0], WithinRel(0.99899, 1e-7));
  // The first Adam step moves every weight with a large gradient by lr against its sign (after the decay).
  CHECK_THAT(p[1], WithinRel(-2.0 * (1 - 1e-5) - 1e-3, 1e-7));
  // A small gradient: m = -1e-4, sqrt(v) / sqrt(1 - 0.999) = 1e-3, so eps shows in the 5th digit.
  CHECK_THAT(p[2], WithinRel(0.5 * (1 - 1e-5) + 0.01 * 1e-4 / (1e-3 + 1e-8), 1e-7));
  CHECK(p[3] == 0.0f);  // zero weight, zero gradient: unchanged
  CHECK(m[0] == 0.05f);
  // Values printed by torch.optim.AdamW([p], lr=1e-3) after the same gradients (PyTorch 1.13, float32).
  const float torch1[] = {0.998989999294281f, -2.0009799003601074f, 0.5009949803352356f, 0.0f};
  for (int i = 0; i < 4; ++i)
    CHECK_THAT(p[i], WithinRel(torch1[i], 2e-7f));
  opt.step(p, m, v, std::vector<float>{-1.0f, 0.25f, 2.0f, 1e-9f}, 2);
  // By hand (double) for p[0], step 2: 0.9993461136424056.
  CHECK_THAT(p[0], WithinRel(0.9993461136424056, 1e-6));
  const float torch2[] = {0.9993460774421692f, -2.001959800720215f, 0.5002461671829224f,
                          -4.9154932639794424e-05f};
  for (int i = 0; i < 4; ++i)
    CHECK_THAT(p[i], WithinRel(torch2[i], 2e-6f));

  const sqb::task::AdamW bad{.lr = 0};
  CHECK_THROWS_WITH(bad.validate(), Contains("lr"));
  CHECK_THROWS_WITH((sqb::task::AdamW{.beta2 = 1.0}.validate()), Contains("beta2"));
}

TEST_CASE("mlp: initialisation is torch.nn.Linear's, seeded and deterministic", "[task][mlp]") {
  sqb::task::ModelSpec spec;  // TinyNet
  spec.bias = true;
  const sqb::task::Mlp a = sqb::task::init_mlp(spec, 7);
  const sqb::task::Mlp b = sqb::task::init_mlp(spec, 7);
  const sqb::task::Mlp c = sqb::task::init_mlp(spec, 8);
  REQUIRE(a.weights.size() == 2);
  CHECK(a.weights[0].rows == 256);
  CHECK(a.weights[0].cols == 784);
  CHECK(a.weights[1].rows == 10);
  CHECK(a.weights[1].cols == 256);
  CHECK(a.biases[0].size() == 256);
  CHECK(a.weights[0].values == b.weights[0].values);
  CHECK(a.biases[1] == b.biases[1]);
  CHECK(a.weights[0].values != c.weights[0].values);
  for (std::size_t l = 0; l < 2; ++l) {
    const double bound = 1 / std::sqrt(static_cast<double>(a.weights[l].cols));
    double sum = 0, sq = 0;
    for (const float v : a.weights[l].values) {
      REQUIRE(std::fabs(v) <= bound);
      sum += v;
      sq += static_cast<double>(v) * v;
    }
    const double n = static_cast<double>(a.weights[l].size());
    // U(-b, b): mean 0, variance b^2/3; n >= 2560 draws: the mean's s.e. is b/sqrt(3n) <= 0.012 b.
    CHECK(std::fabs(sum / n) < 0.06 * bound);
    CHECK_THAT(sq / n, WithinRel(bound * bound / 3, 0.1));
    for (const float v : a.biases[l])
      REQUIRE(std::fabs(v) <= bound);
  }
  sqb::task::ModelSpec no_bias;
  CHECK(sqb::task::init_mlp(no_bias, 1).biases[0].empty());
  sqb::task::ModelSpec bad;
  bad.hidden = {0};
  CHECK_THROWS_AS(sqb::task::init_mlp(bad, 1), sqb::Error);
}

TEST_CASE("task: spec parsing, defaults, canonical text and errors", "[task][spec]") {
  const sqb::task::TaskSpec d = sqb::task::parse_task_spec("fashion_mnist");
  CHECK(d.data == fs::path("/usr/share/datasets/fashion-mnist"));
  CHECK(d.hidden == std::vector<std::size_t>{256});
  CHECK_FALSE(d.bias);
  CHECK(d.epochs == 10);
  CHECK(d.batch == 64);
  CHECK(d.lr == 1e-3);
  CHECK(d.weight_decay == 0.01);
  CHECK(d.canonical() ==
        "fashion_mnist data=/usr/share/datasets/fashion-mnist hidden=256 bias=0 epochs=10 batch=64 lr=0.001 "
        "weight_decay=0.01 train_n=0");
  const sqb::task::TaskSpec s = sqb::task::parse_task_spec(
      "  fashion_mnist hidden=512,256 bias=1 epochs=3 lr=2e-4 data=/tmp/m train_n=1e3");
  CHECK(s.hidden == std::vector<std::size_t>{512, 256});
  CHECK(s.bias);
  CHECK(s.epochs == 3);
  CHECK(s.lr == 2e-4);
  CHECK(s.train_n == 1000);
  CHECK(s.canonical() ==
        "fashion_mnist data=/tmp/m hidden=512,256 bias=1 epochs=3 batch=64 lr=0.0002 "
        "weight_decay=0.01 train_n=1000");
  CHECK(sqb::task::parse_task_spec(s.canonical()).canonical() == s.canonical());
  CHECK(sqb::task::parse_task_spec("fashion_mnist hidden=none").hidden.empty());
  CHECK(sqb::task::model_key(d, 3) == d.canonical() + " seed=3");

  CHECK_THROWS_WITH(sqb::task::parse_task_spec(""), Contains("empty task spec"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("cifar10"),
                    Contains("unknown task 'cifar10'") && Contains("fashion_mnist"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist width=3"),
                    Contains("unknown parameter 'width'") && Contains("hidden"));
  for (const char* bad : {"hidden=0", "hidden=abc", "hidden=256,", "hidden=,256", "hidden=70000"}) {
    INFO(bad);
    CHECK_THROWS_WITH(sqb::task::parse_task_spec(std::string("fashion_mnist ") + bad),
                      Contains("'hidden'") && Contains("[1, 65536]"));
  }
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist epochs=0"), Contains("'epochs'"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist lr=0"), Contains("'lr'"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist bias=yes"), Contains("one of 0|1"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist epochs=2 epochs=3"), Contains("twice"));
  CHECK(sqb::task::task_params().size() == 15);
}

TEST_CASE("task: the cells' recipe keys parse, default as the issue says, and leave the model key alone",
          "[task][spec]") {
  const sqb::task::TaskSpec d = sqb::task::parse_task_spec("fashion_mnist");
  CHECK(d.qat_epochs == 2);
  CHECK(d.qat_lr == 2e-4);
  CHECK(d.ste == sqb::task::Ste::identity);
  CHECK(d.redesign == 1);
  CHECK_FALSE(d.train_levels);
  CHECK(d.weights == sqb::task::Importance::none);
  CHECK(d.model.empty());
  const sqb::task::TaskSpec r = sqb::task::parse_task_spec(
      "fashion_mnist qat_epochs=3 qat_lr=1e-4 ste=clipped redesign=50 qat=levels weights=fisher");
  CHECK(r.qat_epochs == 3);
  CHECK(r.qat_lr == 1e-4);
  CHECK(r.ste == sqb::task::Ste::clipped);
  CHECK(r.redesign == 50);
  CHECK(r.train_levels);
  CHECK(r.weights == sqb::task::Importance::fisher);
  // Cells that differ only in their recipe share one trained float model.
  CHECK(r.canonical() == d.canonical());
  CHECK(sqb::task::model_key(r, 7) == sqb::task::model_key(d, 7));
  CHECK(sqb::task::model_key(r, 7) != sqb::task::model_key(d, 8));

  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist ste=straight"),
                    Contains("'ste'") && Contains("identity|clipped"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist qat=weights"), Contains("ste|levels"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist weights=hessian"), Contains("none|fisher"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist qat_epochs=-1"), Contains("'qat_epochs'"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist qat_lr=0"), Contains("'qat_lr'"));
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist redesign=x"), Contains("'redesign'"));
  // Trained levels re-designed before every step would never be used.
  CHECK_THROWS_WITH(sqb::task::parse_task_spec("fashion_mnist qat=levels"),
                    Contains("'qat'") && Contains("redesign=0"));
  CHECK_NOTHROW(sqb::task::parse_task_spec("fashion_mnist qat=levels redesign=0"));
}

TEST_CASE("task: text_hash is FNV-1a 64", "[task][spec]") {
  CHECK(sqb::task::text_hash("") == "cbf29ce484222325");
  CHECK(sqb::task::text_hash("a") == "af63dc4c8601ec8c");
}

TEST_CASE("task: a saved model loads back bit for bit, and a mismatch is refused", "[task][io]") {
  TempDir dir;
  sqb::task::ModelSpec spec;
  spec.inputs = 12;
  spec.hidden = {5, 4};
  spec.bias = true;
  const sqb::task::Mlp m = sqb::task::init_mlp(spec, 3);
  const fs::path d = dir.path / "models" / "abc";
  CHECK_FALSE(sqb::task::model_saved(d));
  CHECK_THROWS_WITH(sqb::task::load_model(d, spec, "k"), StartsWith((d / "model.txt").string()));
  sqb::task::save_model(d, m, "the key");
  CHECK(sqb::task::model_saved(d));
  const sqb::task::Mlp r = sqb::task::load_model(d, spec, "the key");
  for (std::size_t l = 0; l < 3; ++l) {
    CHECK(std::memcmp(r.weights[l].values.data(), m.weights[l].values.data(), m.weights[l].size() * 4) == 0);
    CHECK(r.biases[l] == m.biases[l]);
  }
  CHECK_THROWS_WITH(sqb::task::load_model(d, spec, "other key"),
                    StartsWith((d / "model.txt").string()) && Contains("the key") && Contains("other key"));
  sqb::task::ModelSpec other = spec;
  other.hidden = {5, 3};
  CHECK_THROWS_WITH(sqb::task::load_model(d, other, "the key"), Contains("not the one expected"));
  // A hand-edited key no longer matches its hash.
  std::string text = sqbtest::slurp(d / "model.txt");
  text.replace(text.find("the key"), 7, "the kez");
  std::ofstream(d / "model.txt") << text;
  CHECK_THROWS_WITH(sqb::task::load_model(d, spec, "the kez"), Contains("does not match its key"));
  // A weight file of the wrong shape.
  sqb::task::save_model(d, m, "the key");
  const std::size_t shape[2] = {4, 6};
  sqb::npy::write(d / "layer1.weight.npy", shape, std::vector<float>(24, 0.0f));
  CHECK_THROWS_WITH(sqb::task::load_model(d, spec, "the key"),
                    StartsWith((d / "layer1.weight.npy").string()) && Contains("(4, 5)"));
  // Fisher files beside it.
  sqb::task::save_fisher(d, m.weights);
  CHECK(sqb::npy::read(d / "layer2.fisher.npy").shape == std::vector<std::size_t>{10, 4});
}

TEST_CASE("task: blas_info names the BLAS library in use", "[task][blas]") {
  const sqb::task::BlasInfo b = sqb::task::blas_info();
  INFO(b.library << " threads " << b.threads << " " << b.config);
  CHECK(b.library != "unknown");
  CHECK(fs::exists(b.library));
  if (b.library.find("openblas") != std::string::npos) {
    CHECK(b.threads >= 1);
    CHECK_FALSE(b.config.empty());
  } else {
    WARN("the BLAS in use is not OpenBLAS (" << b.library
                                             << "): training will be slow; install libopenblas0-pthread");
  }
}
