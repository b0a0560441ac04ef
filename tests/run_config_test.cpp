// `subzero run` config parsing: every bad value is reported with the file and the key before
// any stage runs, and relative paths resolve against the config file's folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "pipeline/run_config.h"
#include "pipeline/run_eval.h"
#include "test_support.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

class RunConfigTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = test::make_temp_dir("subzero-run-config");
        std::ofstream(dir_ + "/chats.jsonl")
            << R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]})" << "\n";
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write(const std::string& text) {
        const std::string path = dir_ + "/run.json";
        std::ofstream(path) << text;
        return path;
    }
    // The sz::Error message of reading `text`, or "" when it parses.
    std::string error_of(const std::string& text) {
        try {
            RunConfig::from_file(write(text));
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    }

    std::string dir_;
};

TEST_F(RunConfigTest, MinimalConfigResolvesPaths) {
    RunConfig config = RunConfig::from_file(write(R"({"model": "gemma3-270m", "data": "chats.jsonl", "seed": 7})"));
    ASSERT_EQ(config.data.size(), 1u);
    EXPECT_TRUE(fs::equivalent(config.data[0], dir_ + "/chats.jsonl"));
    EXPECT_EQ(config.model, "gemma3-270m");
    EXPECT_EQ(config.locate.seed, 7u);
    EXPECT_EQ(config.train.seed, 7u);
    EXPECT_EQ(config.out, "runs/run");
    EXPECT_TRUE(config.locate_enabled);
}

// `subzero run --help` prints these defaults; written out as a config they must parse back to
// the same settings.
TEST_F(RunConfigTest, DefaultsWrittenOutParseBack) {
    nlohmann::json config = RunConfig{}.to_json();
    config["model"] = "m";
    config["data"] = "chats.jsonl";
    config["heldout"] = "chats.jsonl";
    config["out"] = dir_ + "/out";
    config["eval"] = default_eval_settings();
    const RunConfig parsed = RunConfig::from_file(write(config.dump()));
    EXPECT_EQ(parsed.train.to_json(), RunConfig{}.train.to_json());
    EXPECT_EQ(parsed.to_json()["export"], config["export"]);
    nlohmann::json locate = parsed.locate.to_json();
    nlohmann::json expected_locate = LocateConfig{}.to_json();
    locate.erase("corpus_dir");   // resolved to a full path
    expected_locate.erase("corpus_dir");
    EXPECT_EQ(locate, expected_locate);
    nlohmann::json eval = parsed.to_json()["eval"];
    nlohmann::json expected_eval = default_eval_settings();
    for (const char* key : {"neutral", "markers"}) {   // resolved to full paths
        EXPECT_TRUE(fs::equivalent(eval[key].get<std::string>(),
                                   test::source_dir() + "/" + expected_eval[key].get<std::string>()))
            << key;
        eval.erase(key);
        expected_eval.erase(key);
    }
    EXPECT_EQ(eval, expected_eval);
    EXPECT_NO_THROW(check_eval_settings(parsed.eval, "defaults"));
}

TEST_F(RunConfigTest, EvalFilesResolveBesideConfig) {
    const RunConfig config =
        RunConfig::from_file(write(R"({"model": "m", "data": "chats.jsonl", "eval": {"prompts": "chats.jsonl"}})"));
    EXPECT_TRUE(fs::equivalent(config.eval["prompts"].get<std::string>(), dir_ + "/chats.jsonl"));
    EXPECT_EQ(config.to_json()["eval"]["limit"], default_eval_settings()["limit"]);
}

TEST_F(RunConfigTest, UnknownTopLevelKeyNamed) {
    std::string message = error_of(R"({"model": "m", "data": "chats.jsonl", "trian": {}})");
    EXPECT_NE(message.find("unknown key 'trian'"), std::string::npos) << message;
}

TEST_F(RunConfigTest, UnknownStageKeyNamed) {
    std::string message = error_of(R"({"model": "m", "data": "chats.jsonl", "train": {"max_stpes": 3}})");
    EXPECT_NE(message.find("max_stpes"), std::string::npos) << message;
    message = error_of(R"({"model": "m", "data": "chats.jsonl", "locate": {"knee_fraction": 0.2}})");
    EXPECT_NE(message.find("knee_fraction"), std::string::npos) << message;
    message = error_of(R"({"model": "m", "data": "chats.jsonl", "export": {"outtype": "q4"}})");
    EXPECT_NE(message.find("export.outtype"), std::string::npos) << message;
    message = error_of(R"({"model": "m", "data": "chats.jsonl", "eval": {"tmep": 1}})");
    EXPECT_NE(message.find("'tmep'"), std::string::npos) << message;
    EXPECT_NE(message.find("max_new_tokens"), std::string::npos) << message;   // the list of known keys
    message = error_of(R"({"model": "m", "data": "chats.jsonl", "eval": {"limit": -2}})");
    EXPECT_NE(message.find("'limit'"), std::string::npos) << message;
}

TEST_F(RunConfigTest, WrongTypeNamed) {
    std::string message = error_of(R"({"model": "m", "data": "chats.jsonl", "train": {"max_steps": "many"}})");
    EXPECT_NE(message.find("max_steps"), std::string::npos) << message;
    message = error_of(R"({"model": "m", "data": 3})");
    EXPECT_NE(message.find("'data'"), std::string::npos) << message;
    message = error_of(R"({"model": "m", "data": "chats.jsonl", "seed": -1})");
    EXPECT_NE(message.find("'seed'"), std::string::npos) << message;
}

TEST_F(RunConfigTest, MissingFilesNamed) {
    std::string message = error_of(R"({"model": "m", "data": "nowhere.jsonl"})");
    EXPECT_NE(message.find("nowhere.jsonl"), std::string::npos) << message;
    message = error_of(R"({"model": "m", "data": "chats.jsonl", "heldout": "gone.jsonl"})");
    EXPECT_NE(message.find("gone.jsonl"), std::string::npos) << message;
    message = error_of(R"({"data": "chats.jsonl"})");
    EXPECT_NE(message.find("'model' is required"), std::string::npos) << message;
    message = error_of("{not json");
    EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

}  // namespace
}  // namespace sz
