#define BOOST_TEST_MODULE evident_tools
#include <boost/test/unit_test.hpp>
