#pragma once
// The rotated-vector data source (TurboQuant, arXiv 2504.19874) for the distribution table in
// distribution.cpp, plus the Haar rotation it uses (exposed for tests).

#include <boost/random/mersenne_twister.hpp>
#include <memory>
#include <span>
#include <vector>

#include "sqb/distribution.hpp"

namespace sqb {

std::span<const ParamSpec> rotated_params();
std::unique_ptr<Distribution> make_rotated(const Params& p, const DistributionContext& ctx);

namespace detail {

/// A d x d Haar-distributed (uniformly random) orthogonal matrix, column-major (element (i, j) at [j d + i]):
/// Q of the QR factorisation of a matrix of independent N(0,1) draws from `gen`, with each column's sign
/// chosen so that R has a positive diagonal (Mezzadri 2007, "How to generate random matrices from the
/// classical compact groups"; without that fix LAPACK's sign convention biases Q).
std::vector<double> haar_orthogonal(std::size_t d, boost::random::mt19937_64& gen);

}  // namespace detail

}  // namespace sqb
