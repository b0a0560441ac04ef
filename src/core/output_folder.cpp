#include "core/output_folder.h"

#include <unistd.h>

#include <fstream>

#include "core/error.h"

namespace sz {

namespace fs = std::filesystem;

OutputFolder::OutputFolder(const std::string& dir, const std::string& flag) {
    if (dir.empty()) {
        fail("the output folder ({}) is empty; pass a folder name", flag);
    }
    std::error_code error;
    const fs::path target = fs::absolute(dir, error).lexically_normal();
    for (fs::path missing = target; !missing.empty() && !fs::exists(missing, error);
         missing = missing.parent_path()) {
        created_.insert(created_.begin(), missing);
        if (missing == missing.parent_path()) {
            break;
        }
    }
    if (fs::exists(target, error) && !fs::is_directory(target, error)) {
        fail("output path '{}' ({}) exists but is not a folder; pass a folder name", dir, flag);
    }
    fs::create_directories(target, error);
    if (error) {
        remove_empty_created();
        fail("cannot create the output folder '{}' ({}): {}", dir, flag, error.message());
    }
    const fs::path probe = target / (".write-test-" + std::to_string(::getpid()));
    bool writable = false;
    {
        std::ofstream out(probe);
        writable = out && (out << "x") && out.flush();
    }
    fs::remove(probe, error);
    if (!writable) {
        remove_empty_created();
        fail("output folder '{}' ({}) is not writable", dir, flag);
    }
}

OutputFolder::~OutputFolder() { remove_empty_created(); }

void OutputFolder::remove_empty_created() {
    std::error_code error;
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
        if (!fs::is_directory(*it, error) || !fs::is_empty(*it, error) || error) {
            return;
        }
        fs::remove(*it, error);
    }
}

}  // namespace sz
