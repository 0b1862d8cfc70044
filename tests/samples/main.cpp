#define BOOST_TEST_MODULE evident_samples
#include <boost/test/unit_test.hpp>
