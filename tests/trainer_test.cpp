// LoRA trainer on the tiny Gemma 3: loss normalisation, exact resume (in-process, after a stop
// request, and after SIGKILL of a child process), and corrupted checkpoints.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "data/split.h"
#include "model/loader.h"
#include "test_support.h"
#include "tiny_model.h"
#include "train/lora.h"
#include "train/subspace_lock.h"
#include "train/trainer.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

// Environment variable that turns TrainerDriver.RunUntilKilled into the child of the SIGKILL test.
constexpr const char* kDriverDirVariable = "SUBZERO_TRAINER_DRIVER_DIR";
constexpr int64_t kScheduleSteps = 1000;

std::vector<TokenizedExample> synthetic_examples() {
    std::mt19937_64 rng(17);
    std::vector<TokenizedExample> examples;
    for (int i = 0; i < 10; ++i) {
        TokenizedExample example;
        const size_t length = 6 + static_cast<size_t>(rng() % 9);
        example.input_ids.push_back(2);  // <bos>
        for (size_t t = 1; t < length; ++t) {
            example.input_ids.push_back(static_cast<int32_t>(8 + rng() % 290));
        }
        example.loss_mask.assign(length, 0);
        for (size_t t = length / 2; t < length; ++t) {
            example.loss_mask[t] = 1;
        }
        examples.push_back(std::move(example));
    }
    return examples;
}

Atlas lock_atlas() {
    Atlas atlas;
    torch::manual_seed(3);
    for (int64_t layer : {2, 4}) {
        ProjectionAtlas entry;
        entry.layer = layer;
        entry.projection = Projection::Up;
        entry.lock_basis =
            std::get<0>(torch::linalg_qr(torch::randn({64, 3}, torch::kFloat64), "reduced")).t().to(torch::kFloat32);
        atlas.projections.push_back(entry);
    }
    return atlas;
}

// Everything one training run needs, built the same way for every run of a test.
struct TrainingRun {
    LoadedModel loaded;
    std::unique_ptr<LoraAdapter> adapter;
    std::unique_ptr<SubspaceLock> lock;
    std::unique_ptr<Batcher> batcher;
    std::unique_ptr<Trainer> trainer;

    TrainingRun(const std::string& model_path, const std::string& output_dir, int64_t max_steps, double dropout = 0.1) {
        loaded = load_model(model_path);
        loaded.model->convert_weights(torch::kFloat32);
        LoraConfig lora;
        lora.rank = 4;
        lora.alpha = 8;
        lora.dropout = dropout;
        lora.seed = 5;
        adapter = std::make_unique<LoraAdapter>(*loaded.model, lora);
        lock = std::make_unique<SubspaceLock>(*adapter, lock_atlas());
        BatcherOptions batching;
        batching.batch_size = 3;
        batching.seed = 9;
        batcher = std::make_unique<Batcher>(synthetic_examples(), batching);
        TrainerConfig config;
        config.output_dir = output_dir;
        config.max_steps = max_steps;
        config.gradient_accumulation_steps = 2;
        config.learning_rate = 5e-3;
        config.weight_decay = 0.01;
        config.max_grad_norm = 0.5;
        config.scheduler = "cosine";
        config.scheduler_options = {{"warmup_steps", 2}, {"total_steps", kScheduleSteps}};
        config.checkpoint_every = 1;
        config.keep_checkpoints = 0;
        config.seed = 11;
        trainer = std::make_unique<Trainer>(*loaded.model, *adapter, *batcher, config, lock.get());
    }
};

std::vector<double> losses(const TrainResult& result) {
    std::vector<double> values;
    for (const StepMetrics& m : result.history) {
        values.push_back(m.loss);
    }
    return values;
}

class TrainerTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new std::string(test::make_temp_dir("subzero-trainer"));
        path_ = new std::string(test::write_tiny_gemma3(*dir_ + "/tiny.gguf"));
    }
    static void TearDownTestSuite() {
        std::filesystem::remove_all(*dir_);
        delete dir_;
        delete path_;
    }
    void TearDown() override { clear_training_stop_request(); }

    static std::string out(const std::string& name) { return *dir_ + "/" + name; }

    static std::string* dir_;
    static std::string* path_;
};

std::string* TrainerTest::dir_ = nullptr;
std::string* TrainerTest::path_ = nullptr;

TEST_F(TrainerTest, LossNormalisedOverAccumulationWindow) {
    TrainingRun run(*path_, out("normalise"), 1, /*dropout=*/0.0);
    // The first window is micro-batches 0 and 1 of epoch 0, scored before any update.
    double loss_sum = 0.0;
    int64_t trained = 0;
    {
        torch::NoGradGuard no_grad;
        for (size_t index : {0u, 1u}) {
            Batch batch = run.batcher->batch(0, index);
            ForwardOptions options;
            options.attention_mask = batch.attention_mask;
            options.adapter = run.adapter.get();
            torch::Tensor logits = run.loaded.model->forward(batch.input_ids, options);
            torch::Tensor log_probs = torch::log_softmax(logits.slice(1, 0, -1), -1);
            torch::Tensor picked = log_probs.gather(2, batch.input_ids.slice(1, 1).unsqueeze(2)).squeeze(2);
            torch::Tensor mask = batch.loss_mask.slice(1, 1);
            loss_sum += -(picked * mask).sum().item<double>();
            trained += mask.sum().item<int64_t>();
        }
    }
    StepMetrics metrics = run.trainer->step();
    EXPECT_EQ(metrics.trained_tokens, trained);
    EXPECT_NEAR(metrics.loss, loss_sum / static_cast<double>(trained), 1e-5);
    EXPECT_FALSE(metrics.grad_cosine.has_value());
    ASSERT_TRUE(metrics.max_leak_ratio.has_value());
    EXPECT_LE(*metrics.max_leak_ratio, 1e-5);
}

TEST_F(TrainerTest, ResumeReproducesLossesBitwise) {
    const int64_t total = 6;
    const int64_t resume_at = 3;
    TrainingRun uninterrupted(*path_, out("full"), total);
    TrainResult full = uninterrupted.trainer->train();
    ASSERT_EQ(full.history.size(), static_cast<size_t>(total));
    EXPECT_LT(full.history.back().loss, full.history.front().loss);

    TrainingRun resumed(*path_, out("resumed"), total);
    resumed.trainer->resume(out("full") + fmt::format("/checkpoints/step-{:08d}.safetensors", resume_at));
    EXPECT_EQ(resumed.trainer->steps_done(), resume_at);
    TrainResult rest = resumed.trainer->train();
    ASSERT_EQ(rest.history.size(), static_cast<size_t>(total - resume_at));
    for (int64_t i = 0; i < total - resume_at; ++i) {
        const StepMetrics& expected = full.history[static_cast<size_t>(resume_at + i)];
        const StepMetrics& actual = rest.history[static_cast<size_t>(i)];
        EXPECT_EQ(actual.step, expected.step);
        EXPECT_EQ(actual.loss, expected.loss) << "step " << expected.step;
        EXPECT_EQ(actual.lr, expected.lr) << "step " << expected.step;
        EXPECT_EQ(actual.grad_norm, expected.grad_norm) << "step " << expected.step;
        std::cout << "step " << expected.step << " loss uninterrupted " << fmt::format("{:.17g}", expected.loss)
                  << " resumed " << fmt::format("{:.17g}", actual.loss) << "\n";
    }
    auto final_expected = uninterrupted.adapter->named_parameters();
    auto final_actual = resumed.adapter->named_parameters();
    for (const auto& [name, tensor] : final_expected) {
        EXPECT_TRUE(torch::equal(final_actual.at(name), tensor)) << name;
    }
    EXPECT_TRUE(fs::exists(out("full") + "/adapter/adapter_model.safetensors"));
    EXPECT_TRUE(fs::exists(out("full") + "/lock.json"));
}

TEST_F(TrainerTest, StopRequestCheckpointsAndResumes) {
    const int64_t total = 4;
    TrainingRun reference(*path_, out("stop-reference"), total);
    TrainResult expected = reference.trainer->train();

    TrainingRun first(*path_, out("stop"), total);
    first.trainer->step();
    request_training_stop();
    TrainResult stopped = first.trainer->train();
    clear_training_stop_request();
    EXPECT_TRUE(stopped.stopped);
    EXPECT_EQ(stopped.steps, 2);
    EXPECT_EQ(latest_checkpoint(out("stop")), stopped.last_checkpoint);

    TrainingRun second(*path_, out("stop"), total);
    second.trainer->resume(latest_checkpoint(out("stop")));
    TrainResult rest = second.trainer->train();
    ASSERT_EQ(rest.history.size(), 2u);
    EXPECT_EQ(rest.history[0].loss, expected.history[2].loss);
    EXPECT_EQ(rest.history[1].loss, expected.history[3].loss);

    // metrics.jsonl contains each step once, in order, across the stop.
    std::ifstream metrics(out("stop") + "/metrics.jsonl");
    std::string line;
    int64_t next_step = 1;
    while (std::getline(metrics, line)) {
        EXPECT_EQ(nlohmann::json::parse(line)["step"].get<int64_t>(), next_step);
        ++next_step;
    }
    EXPECT_EQ(next_step, total + 1);
}

TEST_F(TrainerTest, CorruptedCheckpointRejected) {
    TrainingRun run(*path_, out("corrupt"), 1);
    run.trainer->train();
    const std::string path = latest_checkpoint(out("corrupt"));

    // Flip one byte of tensor data near the end of the file.
    const auto size = fs::file_size(path);
    {
        std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
        file.seekg(static_cast<std::streamoff>(size - 5));
        char byte = 0;
        file.read(&byte, 1);
        byte = static_cast<char>(byte ^ 0x10);
        file.seekp(static_cast<std::streamoff>(size - 5));
        file.write(&byte, 1);
    }

    TrainingRun again(*path_, out("corrupt-resume"), 1);
    try {
        again.trainer->resume(path);
        FAIL() << "expected sz::Error";
    } catch (const Error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(path), std::string::npos) << message;
        EXPECT_NE(message.find("corrupted"), std::string::npos) << message;
    }
}

TEST_F(TrainerTest, ResumeRejectsOtherSeed) {
    TrainingRun run(*path_, out("seed"), 1);
    run.trainer->train();
    TrainingRun other(*path_, out("seed-other"), 1);
    TrainerConfig config = other.trainer->config();
    config.seed = 12;
    Trainer trainer(*other.loaded.model, *other.adapter, *other.batcher, config, other.lock.get());
    EXPECT_THROW(trainer.resume(latest_checkpoint(out("seed"))), Error);
}

// Child side of the SIGKILL test: trains until the parent kills it. Skipped in normal runs.
TEST(TrainerDriver, RunUntilKilled) {
    const char* dir = std::getenv(kDriverDirVariable);
    if (dir == nullptr) {
        GTEST_SKIP() << "runs only as the child of TrainerTest.SigkillThenResumeMatches";
    }
    TrainingRun run(std::string(dir) + "/tiny.gguf", std::string(dir) + "/killed", kScheduleSteps);
    run.trainer->train();
}

TEST_F(TrainerTest, SigkillThenResumeMatches) {
    const std::string driver_dir = out("sigkill");
    fs::create_directories(driver_dir);
    fs::copy_file(*path_, driver_dir + "/tiny.gguf");
    std::mt19937 rng(static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
    const int64_t kill_after = 2 + static_cast<int64_t>(rng() % 4);

    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        setenv(kDriverDirVariable, driver_dir.c_str(), 1);
        execl("/proc/self/exe", "subzero_tests", "--gtest_filter=TrainerDriver.RunUntilKilled", nullptr);
        _exit(127);
    }

    // Kill the child once its metrics show kill_after steps.
    const std::string metrics_path = driver_dir + "/killed/metrics.jsonl";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    bool reached = false;
    while (std::chrono::steady_clock::now() < deadline) {
        std::ifstream metrics(metrics_path);
        int64_t lines = 0;
        std::string line;
        while (std::getline(metrics, line)) {
            ++lines;
        }
        if (lines >= kill_after) {
            reached = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // A random delay moves the kill to any point of the next step or checkpoint write.
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 60));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(reached) << "the child did not reach step " << kill_after;
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited before the kill";

    TrainingRun resumed(*path_, driver_dir + "/killed", kScheduleSteps);
    resumed.trainer->resume(latest_checkpoint(driver_dir + "/killed"));
    // Step kill_after's metrics line is written before its checkpoint, so the kill can land
    // between the two.
    const int64_t start = resumed.trainer->steps_done();
    ASSERT_GE(start, kill_after - 1);
    std::vector<double> rest;
    for (int i = 0; i < 3; ++i) {
        rest.push_back(resumed.trainer->step().loss);
    }

    TrainingRun reference(*path_, out("sigkill-reference"), start + 3);
    TrainResult expected = reference.trainer->train();
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(rest[i], expected.history[static_cast<size_t>(start) + i].loss)
            << "step " << start + static_cast<int64_t>(i) + 1;
    }
    std::cout << "killed at least " << kill_after << " steps in, resumed at step " << start << "\n";
}

}  // namespace
}  // namespace sz
