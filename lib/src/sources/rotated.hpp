#pragma once
// The Haar rotation the rotated-vector source uses (rotated.cpp), exposed for its tests.

#include <boost/random/mersenne_twister.hpp>
#include <cstddef>
#include <vector>

namespace sqb::detail {

/// A d x d Haar-distributed (uniformly random) orthogonal matrix, column-major (element (i, j) at [j d + i]):
/// Q of the QR factorisation of a matrix of independent N(0,1) draws from `gen`, with each column's sign
/// chosen so that R has a positive diagonal (Mezzadri 2007, "How to generate random matrices from the
/// classical compact groups"; without that fix LAPACK's sign convention biases Q).
std::vector<double> haar_orthogonal(std::size_t d, boost::random::mt19937_64& gen);

}  // namespace sqb::detail
