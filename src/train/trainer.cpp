#include "train/trainer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <sstream>

#include <c10/util/string_utils.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fnv_hash.h"
#include "model/chunked_cross_entropy.h"
#include "formats/safetensors.h"

namespace sz {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCheckpointFormat = "subzero-train-checkpoint";
constexpr int kCheckpointVersion = 1;
constexpr const char* kStateKey = "subzero.state";
constexpr const char* kChecksumKey = "subzero.checksum";

volatile std::sig_atomic_t g_stop_requested = 0;

void handle_stop_signal(int) { g_stop_requested = 1; }

// SplitMix64 finaliser: turns (seed, counter) into well-mixed dropout seeds.
uint64_t mix_seed(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (counter + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Checksum over the state JSON text (FNV-1a detects torn or bit-flipped files; it is not a
// cryptographic hash) and every tensor's name, shape and float32 bytes.
std::string checkpoint_checksum(const std::string& state, const std::map<std::string, torch::Tensor>& tensors) {
    Fnv1a64 hash;
    hash.update(state);
    for (const auto& [name, tensor] : tensors) {
        hash.update(name);
        hash.update(fmt::format("{}", fmt::join(tensor.sizes(), ",")));
        torch::Tensor data = tensor.detach().to(torch::kFloat32).contiguous();
        hash.update(data.data_ptr(), static_cast<size_t>(data.numel()) * sizeof(float));
    }
    return hash.hex();
}

std::string optimizer_state_key(const torch::Tensor& parameter) {
    return c10::guts::to_string(parameter.unsafeGetTensorImpl());
}

}  // namespace

// [B, T] bool: the positions whose logits score a trained token (logits at i - 1 score token i).
torch::Tensor scoring_positions(const Batch& batch) {
    torch::Tensor positions = torch::zeros(batch.loss_mask.sizes(), torch::kBool);
    positions.slice(1, 0, -1).copy_(batch.loss_mask.slice(1, 1) != 0);
    return positions;
}

// Token CE summed over the trained positions of one batch, weighted by the loss mask. `logits`
// contains the scoring positions only ([n, V], row-major), as the forward pass returns them when
// given scoring_positions(batch).
torch::Tensor trained_token_loss_sum(const torch::Tensor& logits, const Batch& batch) {
    torch::Tensor trained = batch.loss_mask.slice(1, 1) != 0;
    torch::Tensor targets = batch.input_ids.slice(1, 1).masked_select(trained);
    torch::Tensor weights = batch.loss_mask.slice(1, 1).masked_select(trained);
    torch::Tensor log_probs = torch::log_softmax(logits, -1);
    torch::Tensor picked = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1);
    return -(picked * weights).sum();
}

torch::Tensor trained_token_loss(CausalLM& model, const Batch& batch, ForwardOptions options) {
    options.attention_mask = batch.attention_mask;
    options.logit_positions = scoring_positions(batch);
    options.return_hidden = true;
    torch::Tensor hidden = model.forward(batch.input_ids, options);   // [n, H], row-major
    torch::Tensor trained = batch.loss_mask.slice(1, 1) != 0;
    OutputHead head = model.output_head();
    return chunked_cross_entropy(hidden, head.weight, head.softcap, batch.input_ids.slice(1, 1).masked_select(trained),
                                 batch.loss_mask.slice(1, 1).masked_select(trained));
}

void install_stop_signal_handlers() {
    struct sigaction action {};
    action.sa_handler = handle_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);
}

void restore_default_stop_signal_handlers() {
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);
}

void request_training_stop() { g_stop_requested = 1; }
bool training_stop_requested() { return g_stop_requested != 0; }
void clear_training_stop_request() { g_stop_requested = 0; }

// ---------------------------------------------------------------------------------------------
// Config and metrics

void TrainerConfig::validate() const {
    if (output_dir.empty()) {
        fail("training needs an output directory");
    }
    if (max_steps < 1) {
        fail("max_steps must be at least 1, got {}", max_steps);
    }
    if (gradient_accumulation_steps < 1) {
        fail("gradient_accumulation_steps must be at least 1, got {}", gradient_accumulation_steps);
    }
    if (!(std::isfinite(learning_rate) && learning_rate > 0.0)) {
        fail("learning_rate must be finite and positive, got {}", learning_rate);
    }
    if (!(std::isfinite(weight_decay) && weight_decay >= 0.0)) {
        fail("weight_decay must be finite and non-negative, got {}", weight_decay);
    }
    if (!(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0)) {
        fail("AdamW betas must lie in [0, 1), got ({}, {})", beta1, beta2);
    }
    if (!(eps > 0.0)) {
        fail("AdamW eps must be positive, got {}", eps);
    }
    if (!(std::isfinite(max_grad_norm) && max_grad_norm >= 0.0)) {
        fail("max_grad_norm must be finite and non-negative (0 turns clipping off), got {}", max_grad_norm);
    }
    if (checkpoint_every < 0 || keep_checkpoints < 0) {
        fail("checkpoint_every and keep_checkpoints must be non-negative, got {} and {}", checkpoint_every,
             keep_checkpoints);
    }
}

nlohmann::json TrainerConfig::to_json() const {
    return {
        {"output_dir", output_dir},
        {"max_steps", max_steps},
        {"gradient_accumulation_steps", gradient_accumulation_steps},
        {"learning_rate", learning_rate},
        {"weight_decay", weight_decay},
        {"beta1", beta1},
        {"beta2", beta2},
        {"eps", eps},
        {"max_grad_norm", max_grad_norm},
        {"scheduler", scheduler},
        {"scheduler_options", scheduler_options},
        {"checkpoint_every", checkpoint_every},
        {"keep_checkpoints", keep_checkpoints},
        {"seed", seed},
    };
}

nlohmann::json StepMetrics::to_json() const {
    nlohmann::json j = {
        {"step", step},
        {"loss", loss},
        {"lr", lr},
        {"grad_norm", grad_norm},
        {"trained_tokens", trained_tokens},
        {"tokens", tokens},
        {"epoch", epoch},
        {"mode", mode},
        {"seconds", seconds},
    };
    j["grad_cosine"] = grad_cosine ? nlohmann::json(*grad_cosine) : nlohmann::json(nullptr);
    if (max_leak_ratio) {
        j["max_leak_ratio"] = *max_leak_ratio;
    }
    if (!events.empty()) {
        nlohmann::json list = nlohmann::json::array();
        for (const SchedulerEvent& event : events) {
            list.push_back({{"step", event.step}, {"name", event.name}, {"cause", event.cause},
                            {"from_mode", event.from_mode}, {"to_mode", event.to_mode},
                            {"ignored_reason", event.ignored_reason}, {"lr_before", event.lr_before}});
        }
        j["events"] = list;
    }
    return j;
}

// ---------------------------------------------------------------------------------------------
// Training loop

struct Trainer::Window {
    std::vector<Batch> batches;
    int64_t trained_tokens = 0;
    int64_t tokens = 0;
    int64_t epoch = 0;
};

nlohmann::json complete_scheduler_options(const std::string& scheduler, const nlohmann::json& given, int64_t max_steps) {
    nlohmann::json options = given.is_null() ? nlohmann::json::object() : given;
    if (scheduler == "constant" || !options.is_object()) {
        return options;
    }
    if (!options.contains("total_steps")) {
        options["total_steps"] = max_steps;
    }
    // The schedulers' default warm-up is 500 steps (the AECS reference value), longer than a
    // short run. Without an explicit value, warm up over the first 10% of the run instead.
    if (!options.contains("warmup_steps") && max_steps < 5000) {
        options["warmup_steps"] = std::max<int64_t>(1, max_steps / 10);
    }
    return options;
}

Trainer::Trainer(CausalLM& model, LoraAdapter& adapter, const Batcher& batcher, TrainerConfig config,
                 SubspaceLock* lock)
    : model_(model), adapter_(adapter), batcher_(batcher), config_(std::move(config)), lock_(lock) {
    config_.validate();
    parameters_ = adapter_.parameters();
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        parameters_, torch::optim::AdamWOptions(config_.learning_rate)
                         .betas(std::make_tuple(config_.beta1, config_.beta2))
                         .eps(config_.eps)
                         .weight_decay(config_.weight_decay));

    nlohmann::json options = complete_scheduler_options(config_.scheduler, config_.scheduler_options, config_.max_steps);
    scheduler_ = make_scheduler(config_.scheduler, config_.learning_rate, options);
    config_.scheduler_options = options;

    fs::create_directories(config_.output_dir);
    metrics_.open((fs::path(config_.output_dir) / "metrics.jsonl").string(), std::ios::app);
    if (!metrics_) {
        fail("cannot open '{}' for appending", (fs::path(config_.output_dir) / "metrics.jsonl").string());
    }
}

Trainer::~Trainer() = default;

Trainer::Window Trainer::next_window() {
    Window window;
    const auto per_epoch = static_cast<int64_t>(batcher_.batches_per_epoch());
    for (int64_t i = 0; i < config_.gradient_accumulation_steps; ++i) {
        const int64_t cursor = micro_batches_ + i;
        window.epoch = cursor / per_epoch;
        Batch batch = batcher_.batch(window.epoch, static_cast<size_t>(cursor % per_epoch));
        window.trained_tokens += batch.loss_mask.slice(1, 1).sum().item<int64_t>();
        window.tokens += batch.attention_mask.sum().item<int64_t>();
        window.batches.push_back(std::move(batch));
    }
    if (window.trained_tokens == 0) {
        fail("micro-batches {} to {} contain no trained token; every example needs at least one assistant token",
             micro_batches_, micro_batches_ + config_.gradient_accumulation_steps - 1);
    }
    return window;
}

// Runs forward and backward on every micro-batch of the window; returns the window's loss.
double Trainer::accumulate(const Window& window) {
    const double normaliser = static_cast<double>(window.trained_tokens);
    double loss_sum = 0.0;
    for (size_t i = 0; i < window.batches.size(); ++i) {
        const Batch& batch = window.batches[i];
        adapter_.reseed_dropout(mix_seed(config_.seed, static_cast<uint64_t>(micro_batches_) + i));
        ForwardOptions options;
        options.adapter = &adapter_;
        torch::Tensor summed = trained_token_loss(model_, batch, options);
        (summed / normaliser).backward();
        loss_sum += summed.item<double>();
    }
    return loss_sum / normaliser;
}

void Trainer::apply_schedule(const StepOutput& output) {
    for (auto& group : optimizer_->param_groups()) {
        auto& options = static_cast<torch::optim::AdamWOptions&>(group.options());
        options.lr(output.lr);
        options.betas(std::make_tuple(config_.beta1 * output.beta1_scale, config_.beta2));
        options.weight_decay(config_.weight_decay * output.weight_decay_scale);
    }
}

StepMetrics Trainer::step() {
    const auto start = std::chrono::steady_clock::now();
    Window window = next_window();

    adapter_.set_training(true);
    optimizer_->zero_grad();
    double loss = 0.0;
    try {
        loss = accumulate(window);
    } catch (...) {
        adapter_.set_training(false);
        throw;
    }
    adapter_.set_training(false);
    if (lock_ != nullptr) {
        lock_->project_gradients();
    }

    std::vector<torch::Tensor> gradients;
    for (const torch::Tensor& p : parameters_) {
        gradients.push_back(p.grad().defined() ? p.grad().flatten() : torch::zeros({p.numel()}));
    }
    torch::Tensor flat = torch::cat(gradients);
    const double grad_norm = flat.norm().item<double>();
    std::optional<double> cosine;
    if (previous_gradient_.defined()) {
        const double denominator = grad_norm * previous_gradient_.norm().item<double>();
        cosine = denominator > 0.0 ? torch::dot(flat, previous_gradient_).item<double>() / denominator : 0.0;
    }
    previous_gradient_ = flat;
    if (config_.max_grad_norm > 0.0) {
        torch::nn::utils::clip_grad_norm_(parameters_, config_.max_grad_norm);
    }

    StepInput input;
    input.step = step_ + 1;
    input.loss = loss;
    input.grad_norm = grad_norm;
    input.grad_cosine = cosine;
    StepOutput schedule = scheduler_->step(input);
    apply_schedule(schedule);
    optimizer_->step();
    if (lock_ != nullptr) {
        lock_->project_weights();
    }
    ++step_;
    micro_batches_ += config_.gradient_accumulation_steps;

    for (const SchedulerEvent& event : schedule.events) {
        spdlog::info("{}", event.describe());
    }
    StepMetrics metrics;
    metrics.step = step_;
    metrics.loss = loss;
    metrics.lr = schedule.lr;
    metrics.grad_norm = grad_norm;
    metrics.grad_cosine = cosine;
    metrics.trained_tokens = window.trained_tokens;
    metrics.tokens = window.tokens;
    metrics.epoch = window.epoch;
    metrics.mode = schedule.mode;
    metrics.events = schedule.events;
    if (lock_ != nullptr) {
        metrics.max_leak_ratio = lock_->max_leak_ratio();
    }
    metrics.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    append_metrics(metrics);
    return metrics;
}

TrainResult Trainer::train() {
    TrainResult result;
    while (step_ < config_.max_steps) {
        StepMetrics metrics = step();
        result.history.push_back(metrics);
        spdlog::info("step {}/{}: loss {:.4f}, lr {:.3g}, grad norm {:.3g}", metrics.step, config_.max_steps,
                     metrics.loss, metrics.lr, metrics.grad_norm);
        if (training_stop_requested()) {
            result.stopped = true;
            break;
        }
        if (config_.checkpoint_every > 0 && step_ % config_.checkpoint_every == 0 && step_ < config_.max_steps) {
            result.last_checkpoint = save_checkpoint();
        }
    }
    result.last_checkpoint = save_checkpoint();
    result.steps = step_;
    if (result.stopped) {
        spdlog::warn("stop requested: stopped after step {} with checkpoint {}", step_, result.last_checkpoint);
        return result;
    }
    adapter_.save((fs::path(config_.output_dir) / "adapter").string());
    if (lock_ != nullptr) {
        lock_->write((fs::path(config_.output_dir) / "lock.json").string());
    }
    return result;
}

void Trainer::append_metrics(const StepMetrics& metrics) {
    metrics_ << metrics.to_json().dump() << '\n';
    metrics_.flush();
}

void Trainer::truncate_metrics(int64_t last_step) {
    const std::string path = (fs::path(config_.output_dir) / "metrics.jsonl").string();
    metrics_.close();
    std::ifstream in(path);
    std::string kept_lines;
    std::string line;
    while (std::getline(in, line)) {
        nlohmann::json entry = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        // A line torn by a kill has no valid JSON and is dropped with the later steps.
        if (entry.is_object() && entry.value("step", int64_t{0}) <= last_step) {
            kept_lines += line + "\n";
        }
    }
    in.close();
    write_file_atomically(path, kept_lines);
    metrics_.open(path, std::ios::app);
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

std::vector<std::string> Trainer::parameter_names() const {
    std::vector<std::string> names;
    for (const LoraPair& pair : adapter_.pairs()) {
        names.push_back(peft_tensor_name(pair.layer, pair.projection, true));
        names.push_back(peft_tensor_name(pair.layer, pair.projection, false));
    }
    return names;
}

void Trainer::save_checkpoint_to(const std::string& path) const {
    std::map<std::string, torch::Tensor> tensors;
    nlohmann::json adam_steps = nlohmann::json::object();
    const std::vector<std::string> names = parameter_names();
    const auto& optimizer_state = optimizer_->state();
    for (size_t i = 0; i < parameters_.size(); ++i) {
        tensors["lora/" + names[i]] = parameters_[i];
        auto found = optimizer_state.find(optimizer_state_key(parameters_[i]));
        if (found == optimizer_state.end()) {
            continue;
        }
        const auto& state = static_cast<const torch::optim::AdamWParamState&>(*found->second);
        tensors["adamw/" + names[i] + "/exp_avg"] = state.exp_avg();
        tensors["adamw/" + names[i] + "/exp_avg_sq"] = state.exp_avg_sq();
        adam_steps[names[i]] = state.step();
    }
    if (previous_gradient_.defined()) {
        tensors["trainer/previous_gradient"] = previous_gradient_;
    }

    nlohmann::json state = {
        {"format", kCheckpointFormat},
        {"version", kCheckpointVersion},
        {"step", step_},
        {"micro_batches", micro_batches_},
        {"seed", config_.seed},
        {"gradient_accumulation_steps", config_.gradient_accumulation_steps},
        {"adamw_steps", adam_steps},
        {"scheduler", scheduler_->state()},
        {"lora", adapter_.config().to_peft_json()},
        {"trainer", config_.to_json()},
    };
    const std::string state_text = state.dump();
    const std::string checksum = checkpoint_checksum(state_text, tensors);
    safetensors::write(path, tensors, {{kStateKey, state_text}, {kChecksumKey, checksum}});
}

std::string Trainer::save_checkpoint() {
    const fs::path dir = fs::path(config_.output_dir) / "checkpoints";
    fs::create_directories(dir);
    const std::string name = fmt::format("step-{:08d}.safetensors", step_);
    save_checkpoint_to((dir / name).string());
    write_file_atomically((dir / "latest").string(), name + "\n");

    if (config_.keep_checkpoints > 0) {
        std::vector<fs::path> files;
        for (const auto& entry : fs::directory_iterator(dir)) {
            const std::string file = entry.path().filename().string();
            if (file.rfind("step-", 0) == 0 && entry.path().extension() == ".safetensors") {
                files.push_back(entry.path());
            }
        }
        std::sort(files.begin(), files.end());
        for (size_t i = 0; i + static_cast<size_t>(config_.keep_checkpoints) < files.size(); ++i) {
            fs::remove(files[i]);
        }
    }
    spdlog::info("wrote checkpoint {}", (dir / name).string());
    return (dir / name).string();
}

void Trainer::resume(const std::string& path) {
    auto checkpoint = safetensors::Checkpoint::open(path);
    const auto& metadata = checkpoint->metadata();
    auto state_it = metadata.find(kStateKey);
    auto checksum_it = metadata.find(kChecksumKey);
    if (state_it == metadata.end() || checksum_it == metadata.end()) {
        fail("'{}' is not a subzero training checkpoint: its safetensors metadata has no '{}' or '{}'", path,
             kStateKey, kChecksumKey);
    }

    std::map<std::string, torch::Tensor> tensors;
    for (const auto& [name, info] : checkpoint->tensors()) {
        tensors[name] = checkpoint->load_float(name);
    }
    const std::string computed = checkpoint_checksum(state_it->second, tensors);
    if (computed != checksum_it->second) {
        fail("checkpoint '{}' is corrupted: checksum {} does not match the recorded {}; resume from an earlier "
             "checkpoint",
             path, computed, checksum_it->second);
    }

    nlohmann::json state = nlohmann::json::parse(state_it->second, nullptr, /*allow_exceptions=*/false);
    if (!state.is_object() || state.value("format", std::string()) != kCheckpointFormat) {
        fail("'{}' is not a subzero training checkpoint (format field missing or different)", path);
    }
    if (state.value("version", 0) != kCheckpointVersion) {
        fail("'{}' has checkpoint version {}, but this build reads version {}", path, state.value("version", 0),
             kCheckpointVersion);
    }
    if (state.at("seed").get<uint64_t>() != config_.seed) {
        fail("'{}' was written with seed {}, but this run has seed {}; use the same seed to resume", path,
             state.at("seed").get<uint64_t>(), config_.seed);
    }
    if (state.at("gradient_accumulation_steps").get<int64_t>() != config_.gradient_accumulation_steps) {
        fail("'{}' was written with gradient_accumulation_steps {}, but this run has {}", path,
             state.at("gradient_accumulation_steps").get<int64_t>(), config_.gradient_accumulation_steps);
    }

    // Everything is validated before any member changes, so a failed resume leaves the trainer usable.
    std::map<std::string, torch::Tensor> lora;
    for (const auto& [name, tensor] : tensors) {
        if (name.rfind("lora/", 0) == 0) {
            lora[name.substr(5)] = tensor;
        }
    }
    const std::vector<std::string> names = parameter_names();
    const nlohmann::json& adam_steps = state.at("adamw_steps");
    for (size_t i = 0; i < names.size(); ++i) {
        if (!adam_steps.contains(names[i])) {
            continue;
        }
        for (const char* moment : {"/exp_avg", "/exp_avg_sq"}) {
            auto found = tensors.find("adamw/" + names[i] + moment);
            if (found == tensors.end() || found->second.sizes() != parameters_[i].sizes()) {
                fail("'{}': AdamW state 'adamw/{}{}' is missing or has the wrong shape", path, names[i], moment);
            }
        }
    }
    auto restored_scheduler = restore_scheduler(state.at("scheduler"));
    if (restored_scheduler->name() != scheduler_->name()) {
        fail("'{}' was written with the {} scheduler, but this run uses {}", path, restored_scheduler->name(),
             scheduler_->name());
    }
    adapter_.load_parameters(lora, path);

    auto& optimizer_state = optimizer_->state();
    optimizer_state.clear();
    for (size_t i = 0; i < names.size(); ++i) {
        if (!adam_steps.contains(names[i])) {
            continue;
        }
        auto param_state = std::make_unique<torch::optim::AdamWParamState>();
        param_state->step(adam_steps.at(names[i]).get<int64_t>());
        param_state->exp_avg(tensors.at("adamw/" + names[i] + "/exp_avg").clone());
        param_state->exp_avg_sq(tensors.at("adamw/" + names[i] + "/exp_avg_sq").clone());
        optimizer_state[optimizer_state_key(parameters_[i])] = std::move(param_state);
    }
    scheduler_ = std::move(restored_scheduler);
    auto previous = tensors.find("trainer/previous_gradient");
    previous_gradient_ = previous == tensors.end() ? torch::Tensor() : previous->second;
    step_ = state.at("step").get<int64_t>();
    micro_batches_ = state.at("micro_batches").get<int64_t>();
    truncate_metrics(step_);
    spdlog::info("resumed from {} at step {}", path, step_);
}

std::string latest_checkpoint(const std::string& output_dir) {
    const fs::path pointer = fs::path(output_dir) / "checkpoints" / "latest";
    std::ifstream in(pointer);
    std::string name;
    if (!in || !std::getline(in, name) || name.empty()) {
        fail("no checkpoint to resume from: '{}' is missing or empty", pointer.string());
    }
    return (fs::path(output_dir) / "checkpoints" / name).string();
}

}  // namespace sz
