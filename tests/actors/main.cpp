#define BOOST_TEST_MODULE evident_actors
#include <boost/test/unit_test.hpp>
