#define BOOST_TEST_MODULE evident_sagas
#include <boost/test/unit_test.hpp>
