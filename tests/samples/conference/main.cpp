#define BOOST_TEST_MODULE evident_samples_conference
#include <boost/test/unit_test.hpp>
