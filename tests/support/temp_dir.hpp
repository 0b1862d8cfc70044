#pragma once

#include <filesystem>
#include <random>
#include <string>

namespace evident::test {

/// A fresh directory under the system temp dir, removed with everything in it when
/// the object goes away.
class temp_dir {
public:
  temp_dir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path()
            / ("evident-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const noexcept {
    return path_;
  }
  std::string str() const {
    return path_.string();
  }
  /// A path inside this directory (not created).
  std::string sub(const std::string& name) const {
    return (path_ / name).string();
  }

private:
  std::filesystem::path path_;
};

} // namespace evident::test
