#define BOOST_TEST_MODULE evident_persistence
#include <boost/test/unit_test.hpp>
