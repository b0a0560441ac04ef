// run_training, the work behind `subzero train`, on the tiny Gemma 3 with a small JSONL written
// here: loss falls, the output folder is complete, a stopped run resumes exactly, and invalid
// config keys, data lines and resume requests fail with messages that name them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_support.h"
#include "tiny_model.h"
#include "train/train_run.h"
#include "train/trainer.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

// Twelve conversations with distinct prompts (so deduplication keeps them all) and the same
// reply, which a rank-4 adapter learns within a few dozen steps.
std::string write_data(const std::string& path) {
    std::ofstream out(path);
    for (int i = 0; i < 12; ++i) {
        nlohmann::json line = {
            {"messages",
             {{{"role", "user"}, {"content", "say it " + std::to_string(i)}},
              {{"role", "assistant"}, {"content", "the cat sat on the mat"}}}}};
        out << line.dump() << "\n";
    }
    return path;
}

TrainRunConfig small_config(int64_t max_steps) {
    TrainRunConfig config;
    config.rank = 4;
    config.alpha = 8.0;
    config.dropout = 0.0;
    config.max_steps = max_steps;
    config.batch_size = 4;
    config.learning_rate = 1e-2;
    config.scheduler = "constant";
    config.checkpoint_every = 2;
    config.keep_checkpoints = 0;
    config.eval_every = 10;
    config.heldout_fraction = 0.2;
    config.max_tokens = 128;
    config.seed = 7;
    return config;
}

// metrics.jsonl as (step, kind) counts, kind "train" or "heldout".
std::map<std::pair<int64_t, std::string>, int> metrics_lines(const std::string& dir) {
    std::map<std::pair<int64_t, std::string>, int> counts;
    std::ifstream in(fs::path(dir) / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
        const nlohmann::json entry = nlohmann::json::parse(line);
        const std::string kind = entry.contains("heldout_loss") ? "heldout" : "train";
        ++counts[{entry.at("step").get<int64_t>(), kind}];
    }
    return counts;
}

class TrainRunTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new std::string(test::make_temp_dir("subzero-train-run"));
        model_ = new std::string(test::write_tiny_gemma3(*dir_ + "/tiny.gguf"));
        data_ = new std::string(write_data(*dir_ + "/data.jsonl"));
    }
    static void TearDownTestSuite() {
        fs::remove_all(*dir_);
        delete dir_;
        delete model_;
        delete data_;
    }
    void TearDown() override { clear_training_stop_request(); }

    static TrainRunOptions options(const std::string& name, int64_t max_steps) {
        TrainRunOptions o;
        o.model = *model_;
        o.data = {*data_};
        o.output_dir = *dir_ + "/" + name;
        o.config = small_config(max_steps);
        return o;
    }

    static std::string* dir_;
    static std::string* model_;
    static std::string* data_;
};

std::string* TrainRunTest::dir_ = nullptr;
std::string* TrainRunTest::model_ = nullptr;
std::string* TrainRunTest::data_ = nullptr;

TEST_F(TrainRunTest, LossFallsAndOutputsWritten) {
    TrainRunOptions o = options("full", 30);
    TrainRunResult result = run_training(o);

    EXPECT_EQ(result.steps, 30);
    EXPECT_FALSE(result.stopped);
    ASSERT_EQ(result.history.size(), 30u);
    const double first = result.history.front().loss;
    double last_five = 0.0;
    for (size_t i = 25; i < 30; ++i) {
        last_five += result.history[i].loss / 5.0;
    }
    EXPECT_LT(last_five, 0.5 * first) << "first loss " << first << ", mean of last five " << last_five;

    // Evaluations before training (the starting value) and at steps 10, 20 and 30; the
    // held-out loss falls too.
    ASSERT_EQ(result.heldout.size(), 4u);
    EXPECT_EQ(result.heldout[0].step, 0);
    EXPECT_EQ(result.heldout[1].step, 10);
    EXPECT_EQ(result.heldout[3].step, 30);
    EXPECT_GT(result.heldout[0].trained_tokens, 0);
    EXPECT_LT(result.heldout[3].loss, result.heldout[0].loss);

    const fs::path out = o.output_dir;
    EXPECT_TRUE(fs::exists(out / "config.json"));
    EXPECT_TRUE(fs::exists(out / "metrics.jsonl"));
    EXPECT_TRUE(fs::exists(out / "checkpoints" / "latest"));
    EXPECT_TRUE(fs::exists(out / "adapter" / "adapter_config.json"));
    EXPECT_TRUE(fs::exists(out / "adapter" / "adapter_model.safetensors"));
    EXPECT_FALSE(fs::exists(out / "lock.json"));  // no atlas

    std::ifstream config_file(out / "config.json");
    const nlohmann::json config = nlohmann::json::parse(config_file);
    EXPECT_EQ(config.at("rank"), 4);
    EXPECT_EQ(config.at("model"), *model_);
    // config.json reads back as a config, so --resume can reuse it.
    nlohmann::json settings = config;
    settings.erase("model");
    settings.erase("data");
    settings.erase("atlas");
    EXPECT_EQ(TrainRunConfig::from_json(settings, "config.json").to_json(), o.config.to_json());

    const auto lines = metrics_lines(o.output_dir);
    for (int64_t step = 1; step <= 30; ++step) {
        EXPECT_EQ(lines.count({step, "train"}), 1u) << "step " << step;
    }
    EXPECT_EQ(lines.count({10, "heldout"}), 1u);
    EXPECT_EQ(lines.count({20, "heldout"}), 1u);
    EXPECT_EQ(lines.count({30, "heldout"}), 1u);
}

TEST_F(TrainRunTest, ResumeAfterStopMatchesUninterrupted) {
    TrainRunResult uninterrupted = run_training(options("straight", 8));
    ASSERT_EQ(uninterrupted.history.size(), 8u);

    TrainRunOptions first = options("stopped", 8);
    first.on_step = [](const StepMetrics& m) {
        if (m.step == 3) {
            request_training_stop();
        }
    };
    TrainRunResult stopped = run_training(first);
    EXPECT_TRUE(stopped.stopped);
    EXPECT_EQ(stopped.steps, 3);
    EXPECT_FALSE(fs::exists(fs::path(first.output_dir) / "adapter"));

    TrainRunOptions second = options("stopped", 8);
    second.resume = true;
    TrainRunResult resumed = run_training(second);
    EXPECT_FALSE(resumed.stopped);
    EXPECT_EQ(resumed.steps, 8);
    ASSERT_EQ(resumed.history.size(), 5u);
    EXPECT_EQ(resumed.history.front().step, 4);
    for (size_t i = 0; i < resumed.history.size(); ++i) {
        EXPECT_DOUBLE_EQ(resumed.history[i].loss, uninterrupted.history[i + 3].loss) << "step " << i + 4;
    }
    EXPECT_TRUE(fs::exists(fs::path(second.output_dir) / "adapter" / "adapter_model.safetensors"));

    const auto lines = metrics_lines(second.output_dir);
    for (int64_t step = 1; step <= 8; ++step) {
        EXPECT_EQ(lines.count({step, "train"}), 1u) << "step " << step;
    }
}

TEST_F(TrainRunTest, ResumeWithoutCheckpointNamesFolder) {
    TrainRunOptions o = options("empty", 4);
    o.resume = true;
    try {
        run_training(o);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(o.output_dir), std::string::npos) << e.what();
    }
}

TEST_F(TrainRunTest, NewRunIntoFinishedRunRejected) {
    TrainRunOptions o = options("twice", 2);
    run_training(o);
    try {
        run_training(o);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
    }
}

TEST_F(TrainRunTest, ConfigUnknownKeyNamed) {
    try {
        TrainRunConfig::from_json({{"rank", 4}, {"rnak", 8}}, "cfg.json");
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("cfg.json"), std::string::npos) << message;
        EXPECT_NE(message.find("'rnak'"), std::string::npos) << message;
    }
}

TEST_F(TrainRunTest, ConfigWrongTypeNamed) {
    const std::vector<nlohmann::json> cases = {
        {{"rank", "4"}},
        {{"learning_rate", true}},
        {{"flip_roles", 1}},
        {{"seed", -1}},
        {{"targets", "q_proj"}},
        {{"scheduler_options", 3}},
    };
    for (const nlohmann::json& config : cases) {
        const std::string key = config.begin().key();
        try {
            TrainRunConfig::from_json(config, "cfg.json");
            ADD_FAILURE() << "expected sz::Error for " << config.dump();
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("'" + key + "'"), std::string::npos) << e.what();
        }
    }
}

TEST_F(TrainRunTest, ConfigInvalidValueNamed) {
    TrainRunConfig config = small_config(4);
    config.scheduler = "linear-ish";
    EXPECT_THROW(config.validate("cfg.json"), Error);
    config = small_config(4);
    config.heldout_fraction = 1.0;
    try {
        config.validate("cfg.json");
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("heldout_fraction"), std::string::npos) << e.what();
    }
}

TEST_F(TrainRunTest, BadDataLineNamedBeforeLoading) {
    const std::string path = *dir_ + "/bad.jsonl";
    {
        std::ofstream out(path);
        out << R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})" << "\n";
        out << R"({"messages": [{"role": "user", "content": "hi"}]})" << "\n";
    }
    TrainRunOptions o = options("bad-data", 4);
    o.data = {path};
    o.model = *dir_ + "/no-such-model.gguf";  // the data error must come first
    try {
        run_training(o);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(path + ":2"), std::string::npos) << e.what();
    }
}

TEST_F(TrainRunTest, FailedStartLeavesNoFolder) {
    TrainRunOptions o = options("never/created", 4);
    o.model = *dir_ + "/no-such-model.gguf";
    EXPECT_THROW(run_training(o), Error);
    EXPECT_FALSE(fs::exists(*dir_ + "/never")) << "a run that failed before writing left its output folder";
}

}  // namespace
}  // namespace sz
