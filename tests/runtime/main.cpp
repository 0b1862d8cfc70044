#define BOOST_TEST_MODULE evident_runtime
#include <boost/test/unit_test.hpp>
