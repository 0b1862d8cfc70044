#define BOOST_TEST_MODULE evident_samples_downloads
#include <boost/test/unit_test.hpp>
