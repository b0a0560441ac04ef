// write_file_atomically: content lands whole, a failed write leaves nothing, and temporaries
// of writers that were killed are removed by the next write to the same path.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "core/atomic_file.h"
#include "test_support.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

TEST(AtomicFile, WritesWholeContent) {
    std::string dir = test::make_temp_dir("sz-atomic");
    write_file_atomically(dir + "/a.bin", std::string("first"));
    write_file_atomically(dir + "/a.bin", std::string("second"));
    EXPECT_EQ(read_all(dir + "/a.bin"), "second");
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
    fs::remove_all(dir);
}

TEST(AtomicFile, FailedWriteLeavesNothing) {
    std::string dir = test::make_temp_dir("sz-atomic");
    EXPECT_THROW(write_file_atomically(dir + "/b.bin", [](std::ostream&) { throw std::runtime_error("boom"); }),
                 std::runtime_error);
    EXPECT_TRUE(fs::is_empty(dir));
    fs::remove_all(dir);
}

TEST(AtomicFile, RemovesTemporariesOfDeadWriters) {
    std::string dir = test::make_temp_dir("sz-atomic");
    // No process has pid 2^31-2 on Linux (pid_max is at most 2^22); the own pid is alive.
    std::ofstream(dir + "/c.bin.tmp.2147483646") << "left by a killed writer";
    std::ofstream(dir + "/c.bin.tmp.notapid") << "not ours";
    std::ofstream(dir + "/other.bin.tmp.2147483646") << "another target";
    write_file_atomically(dir + "/c.bin", std::string("done"));
    EXPECT_FALSE(fs::exists(dir + "/c.bin.tmp.2147483646"));
    EXPECT_TRUE(fs::exists(dir + "/c.bin.tmp.notapid"));
    EXPECT_TRUE(fs::exists(dir + "/other.bin.tmp.2147483646"));
    EXPECT_EQ(read_all(dir + "/c.bin"), "done");
    fs::remove_all(dir);
}

}  // namespace
}  // namespace sz
