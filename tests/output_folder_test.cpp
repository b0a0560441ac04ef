// OutputFolder: creates the folder up front and removes only the empty folders it created.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/output_folder.h"
#include "test_support.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

TEST(OutputFolder, EmptyCreatedFoldersRemoved) {
    const std::string dir = test::make_temp_dir("sz-output-folder");
    {
        const OutputFolder folder(dir + "/a/b", "--out");
        EXPECT_TRUE(fs::is_directory(dir + "/a/b"));
    }
    EXPECT_FALSE(fs::exists(dir + "/a"));
    EXPECT_TRUE(fs::is_directory(dir)) << "a folder that existed before must stay";
    fs::remove_all(dir);
}

TEST(OutputFolder, WrittenFolderKept) {
    const std::string dir = test::make_temp_dir("sz-output-folder");
    {
        const OutputFolder folder(dir + "/a/b", "--out");
        std::ofstream(dir + "/a/b/result.json") << "{}";
    }
    EXPECT_TRUE(fs::exists(dir + "/a/b/result.json"));
    fs::remove_all(dir);
}

TEST(OutputFolder, ExistingEmptyFolderKept) {
    const std::string dir = test::make_temp_dir("sz-output-folder");
    fs::create_directories(dir + "/given");
    { const OutputFolder folder(dir + "/given", "--out"); }
    EXPECT_TRUE(fs::is_directory(dir + "/given"));
    fs::remove_all(dir);
}

TEST(OutputFolder, FileInTheWayRejected) {
    const std::string dir = test::make_temp_dir("sz-output-folder");
    std::ofstream(dir + "/taken") << "x";
    try {
        const OutputFolder folder(dir + "/taken", "--out");
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("not a folder"), std::string::npos) << e.what();
    }
    try {
        const OutputFolder folder(dir + "/taken/below", "--out");
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("taken/below"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(fs::is_regular_file(dir + "/taken"));
    fs::remove_all(dir);
}

}  // namespace
}  // namespace sz
