#include "train/train_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/output_folder.h"
#include "core/progress_bar.h"
#include "data/split.h"
#include "data/tokenized_example.h"
#include "locate/atlas.h"
#include "locate/locate.h"
#include "model/loader.h"
#include "model/projection.h"
#include "train/lora.h"
#include "train/schedule/scheduler.h"
#include "train/subspace_lock.h"
#include "train/surgery.h"
#include "train/train_report.h"

namespace sz {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Config

namespace {

// JSON type names for error messages.
const char* json_kind(const nlohmann::json& value) { return value.type_name(); }

template <typename T>
T read_field(const nlohmann::json& value, const std::string& key, const std::string& source);

template <>
int64_t read_field<int64_t>(const nlohmann::json& value, const std::string& key, const std::string& source) {
    if (!value.is_number_integer()) {
        fail("{}: '{}' must be an integer, got {} {}", source, key, json_kind(value), value.dump());
    }
    return value.get<int64_t>();
}

template <>
uint64_t read_field<uint64_t>(const nlohmann::json& value, const std::string& key, const std::string& source) {
    if (!value.is_number_integer() || (!value.is_number_unsigned() && value.get<int64_t>() < 0)) {
        fail("{}: '{}' must be a non-negative integer, got {} {}", source, key, json_kind(value), value.dump());
    }
    return value.get<uint64_t>();
}

template <>
double read_field<double>(const nlohmann::json& value, const std::string& key, const std::string& source) {
    if (!value.is_number()) {
        fail("{}: '{}' must be a number, got {} {}", source, key, json_kind(value), value.dump());
    }
    return value.get<double>();
}

template <>
bool read_field<bool>(const nlohmann::json& value, const std::string& key, const std::string& source) {
    if (!value.is_boolean()) {
        fail("{}: '{}' must be true or false, got {} {}", source, key, json_kind(value), value.dump());
    }
    return value.get<bool>();
}

template <>
std::string read_field<std::string>(const nlohmann::json& value, const std::string& key, const std::string& source) {
    if (!value.is_string()) {
        fail("{}: '{}' must be a string, got {} {}", source, key, json_kind(value), value.dump());
    }
    return value.get<std::string>();
}

template <>
std::vector<std::string> read_field<std::vector<std::string>>(const nlohmann::json& value, const std::string& key,
                                                              const std::string& source) {
    if (!value.is_array()) {
        fail("{}: '{}' must be an array of strings, got {} {}", source, key, json_kind(value), value.dump());
    }
    std::vector<std::string> items;
    for (const nlohmann::json& item : value) {
        items.push_back(read_field<std::string>(item, key, source));
    }
    return items;
}

template <>
nlohmann::json read_field<nlohmann::json>(const nlohmann::json& value, const std::string& key,
                                          const std::string& source) {
    if (!value.is_object()) {
        fail("{}: '{}' must be a JSON object, got {} {}", source, key, json_kind(value), value.dump());
    }
    return value;
}

}  // namespace

TrainRunConfig TrainRunConfig::from_json(const nlohmann::json& config, const std::string& source) {
    if (!config.is_object()) {
        fail("{}: the train config must be a JSON object, got {}", source, json_kind(config));
    }
    TrainRunConfig c;
    // Each known key with a setter that checks its type; anything else is rejected.
    const std::vector<std::pair<std::string, std::function<void(const nlohmann::json&)>>> fields = {
        {"rank", [&](const nlohmann::json& v) { c.rank = read_field<int64_t>(v, "rank", source); }},
        {"alpha", [&](const nlohmann::json& v) { c.alpha = read_field<double>(v, "alpha", source); }},
        {"dropout", [&](const nlohmann::json& v) { c.dropout = read_field<double>(v, "dropout", source); }},
        {"use_rslora", [&](const nlohmann::json& v) { c.use_rslora = read_field<bool>(v, "use_rslora", source); }},
        {"targets",
         [&](const nlohmann::json& v) { c.targets = read_field<std::vector<std::string>>(v, "targets", source); }},
        {"max_steps", [&](const nlohmann::json& v) { c.max_steps = read_field<int64_t>(v, "max_steps", source); }},
        {"batch_size", [&](const nlohmann::json& v) { c.batch_size = read_field<int64_t>(v, "batch_size", source); }},
        {"gradient_accumulation_steps",
         [&](const nlohmann::json& v) {
             c.gradient_accumulation_steps = read_field<int64_t>(v, "gradient_accumulation_steps", source);
         }},
        {"learning_rate",
         [&](const nlohmann::json& v) { c.learning_rate = read_field<double>(v, "learning_rate", source); }},
        {"weight_decay",
         [&](const nlohmann::json& v) { c.weight_decay = read_field<double>(v, "weight_decay", source); }},
        {"max_grad_norm",
         [&](const nlohmann::json& v) { c.max_grad_norm = read_field<double>(v, "max_grad_norm", source); }},
        {"scheduler", [&](const nlohmann::json& v) { c.scheduler = read_field<std::string>(v, "scheduler", source); }},
        {"scheduler_options",
         [&](const nlohmann::json& v) {
             c.scheduler_options = read_field<nlohmann::json>(v, "scheduler_options", source);
         }},
        {"checkpoint_every",
         [&](const nlohmann::json& v) { c.checkpoint_every = read_field<int64_t>(v, "checkpoint_every", source); }},
        {"keep_checkpoints",
         [&](const nlohmann::json& v) { c.keep_checkpoints = read_field<int64_t>(v, "keep_checkpoints", source); }},
        {"eval_every", [&](const nlohmann::json& v) { c.eval_every = read_field<int64_t>(v, "eval_every", source); }},
        {"log_every", [&](const nlohmann::json& v) { c.log_every = read_field<int64_t>(v, "log_every", source); }},
        {"heldout_fraction",
         [&](const nlohmann::json& v) { c.heldout_fraction = read_field<double>(v, "heldout_fraction", source); }},
        {"max_tokens", [&](const nlohmann::json& v) { c.max_tokens = read_field<int64_t>(v, "max_tokens", source); }},
        {"overlong", [&](const nlohmann::json& v) { c.overlong = read_field<std::string>(v, "overlong", source); }},
        {"flip_roles", [&](const nlohmann::json& v) { c.flip_roles = read_field<bool>(v, "flip_roles", source); }},
        {"system_prompt",
         [&](const nlohmann::json& v) { c.system_prompt = read_field<std::string>(v, "system_prompt", source); }},
        {"filter_disclaimers",
         [&](const nlohmann::json& v) { c.filter_disclaimers = read_field<bool>(v, "filter_disclaimers", source); }},
        {"seed", [&](const nlohmann::json& v) { c.seed = read_field<uint64_t>(v, "seed", source); }},
    };
    for (auto item = config.begin(); item != config.end(); ++item) {
        const std::string& key = item.key();
        bool known = false;
        for (const auto& [name, set] : fields) {
            if (name == key) {
                set(item.value());
                known = true;
                break;
            }
        }
        if (!known) {
            std::string names;
            for (const auto& field : fields) {
                names += (names.empty() ? "" : ", ") + field.first;
            }
            fail("{}: unknown key '{}'; valid keys are {}", source, key, names);
        }
    }
    return c;
}

TrainRunConfig TrainRunConfig::from_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        fail("cannot read train config '{}': file not found or not readable", path);
    }
    nlohmann::json config;
    try {
        config = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        fail("{}: invalid JSON: {}", path, e.what());
    }
    return from_json(config, path);
}

nlohmann::json TrainRunConfig::to_json() const {
    return {
        {"rank", rank},
        {"alpha", alpha},
        {"dropout", dropout},
        {"use_rslora", use_rslora},
        {"targets", targets},
        {"max_steps", max_steps},
        {"batch_size", batch_size},
        {"gradient_accumulation_steps", gradient_accumulation_steps},
        {"learning_rate", learning_rate},
        {"weight_decay", weight_decay},
        {"max_grad_norm", max_grad_norm},
        {"scheduler", scheduler},
        {"scheduler_options", scheduler_options},
        {"checkpoint_every", checkpoint_every},
        {"keep_checkpoints", keep_checkpoints},
        {"eval_every", eval_every},
        {"log_every", log_every},
        {"heldout_fraction", heldout_fraction},
        {"max_tokens", max_tokens},
        {"overlong", overlong},
        {"flip_roles", flip_roles},
        {"system_prompt", system_prompt},
        {"filter_disclaimers", filter_disclaimers},
        {"seed", seed},
    };
}

namespace {

LoraConfig lora_config(const TrainRunConfig& c) {
    LoraConfig lora;
    lora.rank = c.rank;
    lora.alpha = c.alpha;
    lora.dropout = c.dropout;
    lora.use_rslora = c.use_rslora;
    if (!c.targets.empty()) {
        lora.targets.clear();
        for (const std::string& name : c.targets) {
            lora.targets.push_back(parse_projection(name));
        }
    }
    lora.seed = c.seed;
    return lora;
}

TrainerConfig trainer_config(const TrainRunConfig& c, const std::string& output_dir) {
    TrainerConfig config;
    config.output_dir = output_dir;
    config.max_steps = c.max_steps;
    config.gradient_accumulation_steps = c.gradient_accumulation_steps;
    config.learning_rate = c.learning_rate;
    config.weight_decay = c.weight_decay;
    config.max_grad_norm = c.max_grad_norm;
    config.scheduler = c.scheduler;
    config.scheduler_options = c.scheduler_options;
    config.checkpoint_every = c.checkpoint_every;
    config.keep_checkpoints = c.keep_checkpoints;
    config.seed = c.seed;
    return config;
}

}  // namespace

void TrainRunConfig::validate(const std::string& source) const {
    try {
        lora_config(*this).validate();
        trainer_config(*this, "unused").validate();
        parse_overlong_policy(overlong);
    } catch (const Error& e) {
        fail("{}: {}", source, e.what());
    }
    // Build the scheduler once, as the Trainer will, so a bad name or option fails now.
    nlohmann::json options = complete_scheduler_options(scheduler, scheduler_options, max_steps);
    try {
        make_scheduler(scheduler, learning_rate, options);
    } catch (const Error& e) {
        fail("{}: {}; set scheduler_options in the config file or use --scheduler constant", source, e.what());
    }
    if (batch_size < 1) {
        fail("{}: batch_size must be at least 1, got {}", source, batch_size);
    }
    if (eval_every < 0) {
        fail("{}: eval_every must be non-negative (0 evaluates only at the end), got {}", source, eval_every);
    }
    if (log_every < 1) {
        fail("{}: log_every must be at least 1, got {}", source, log_every);
    }
    if (!(heldout_fraction >= 0.0 && heldout_fraction < 1.0)) {
        fail("{}: heldout_fraction must lie in [0, 1), got {}", source, heldout_fraction);
    }
    if (max_tokens < 2) {
        fail("{}: max_tokens must be at least 2, got {}", source, max_tokens);
    }
}

// ---------------------------------------------------------------------------------------------
// Run

namespace {

// Mean CE per trained token of `examples`, with the adapter in evaluation mode (no dropout)
// and no autograd graph.
HeldoutLoss heldout_loss(CausalLM& model, const LoraAdapter& adapter, const std::vector<TokenizedExample>& examples,
                         int64_t batch_size, int64_t step) {
    torch::NoGradGuard no_grad;
    double loss_sum = 0.0;
    int64_t trained = 0;
    for (size_t begin = 0; begin < examples.size(); begin += static_cast<size_t>(batch_size)) {
        std::vector<size_t> indices;
        for (size_t i = begin; i < std::min(examples.size(), begin + static_cast<size_t>(batch_size)); ++i) {
            indices.push_back(i);
        }
        Batch batch = make_batch(examples, indices, /*pad_id=*/0);
        ForwardOptions options;
        options.adapter = &adapter;
        loss_sum += trained_token_loss(model, batch, options).item<double>();
        trained += batch.trained_tokens;
    }
    HeldoutLoss result;
    result.step = step;
    result.trained_tokens = trained;
    result.loss = trained > 0 ? loss_sum / static_cast<double>(trained) : 0.0;
    return result;
}

void log_step(const StepMetrics& m, int64_t max_steps) {
    const double tokens_per_second = m.seconds > 0.0 ? static_cast<double>(m.tokens) / m.seconds : 0.0;
    std::string leak;
    if (m.max_leak_ratio) {
        leak = fmt::format(", max leak {:.2e}", *m.max_leak_ratio);
    }
    spdlog::info("step {}/{}: loss {:.4f}, lr {:.3g}, mode {}, grad norm {:.3g}, {:.0f} tokens/s ({:.2f} s){}", m.step,
                 max_steps, m.loss, m.lr, m.mode, m.grad_norm, tokens_per_second, m.seconds, leak);
}

}  // namespace

TrainRunResult run_training(const TrainRunOptions& options) {
    clear_training_stop_request();
    const TrainRunConfig& config = options.config;

    // 1. Validate every input that does not need the model.
    config.validate(options.config_source);
    if (options.data.empty()) {
        fail("training needs at least one data file (--data FILE)");
    }
    if (options.output_dir.empty()) {
        fail("training needs an output folder (--out DIR)");
    }
    // Removed again if this run fails before writing anything into it.
    const OutputFolder output_folder(options.output_dir, "--out");
    std::string resume_from;
    const bool has_checkpoint = fs::exists(fs::path(options.output_dir) / "checkpoints" / "latest");
    if (options.resume) {
        if (!has_checkpoint) {
            fail("--resume: no checkpoint in output folder '{}' (checkpoints/latest is missing); run without --resume "
                 "to start a new run",
                 options.output_dir);
        }
        resume_from = latest_checkpoint(options.output_dir);
    } else if (has_checkpoint) {
        fail("output folder '{}' already contains a training run (checkpoints/latest); pass --resume to continue it "
             "or choose another folder",
             options.output_dir);
    }

    ConversationOptions conversation_options;
    conversation_options.flip_roles = config.flip_roles;
    conversation_options.system_prompt = config.system_prompt;
    conversation_options.filter_disclaimers = config.filter_disclaimers;
    LoadedConversations loaded_data = load_conversations(options.data, conversation_options);
    spdlog::info("data: {}", loaded_data.report.summary());

    SplitOptions split_options;
    split_options.seed = config.seed;
    split_options.heldout_fraction = config.heldout_fraction;
    const DataSplit split = split_conversations(loaded_data.conversations, split_options);

    std::optional<Atlas> atlas;
    if (!options.atlas_dir.empty()) {
        atlas = Atlas::read(options.atlas_dir);
    }

    // 2. Load the model; the atlas check needs its weights.
    spdlog::info("loading {}", options.model);
    LoadedModel loaded = load_model(options.model);
    CausalLM& model = *loaded.model;
    model.convert_weights(torch::kFloat32);
    if (atlas) {
        try {
            atlas->check_model(model_identity(model));
        } catch (const Error& e) {
            fail("atlas '{}' does not match model '{}': {}", options.atlas_dir, options.model, e.what());
        }
    }

    // 3. Tokenize both parts of the split.
    TokenizeOptions tokenize_options;
    tokenize_options.max_tokens = config.max_tokens;
    tokenize_options.overlong = parse_overlong_policy(config.overlong);
    auto tokenize_part = [&](const std::vector<size_t>& indices) {
        std::vector<Conversation> part;
        for (size_t i : indices) {
            part.push_back(loaded_data.conversations[i]);
        }
        return tokenize_conversations(part, *loaded.tokenizer, *loaded.chat_template, tokenize_options);
    };
    TokenizedExamples train_examples = tokenize_part(split.train);
    TokenizedExamples heldout_examples = tokenize_part(split.heldout);
    spdlog::info("train: {}", train_examples.report.summary());
    if (!split.heldout.empty()) {
        spdlog::info("held out: {}", heldout_examples.report.summary());
    }

    // 4. Surgery and lock. Surgery changes the base weights, so a resumed run repeats it on the
    // freshly loaded model before loading the checkpoint's LoRA tensors.
    if (atlas) {
        SurgeryReport surgery = apply_surgery(model, *atlas);
        spdlog::info("surgery: {}", surgery.summary());
    }
    LoraConfig lora = lora_config(config);
    lora.base_model_name_or_path = model.config().name.empty() ? options.model : model.config().name;
    LoraAdapter adapter(model, lora);
    std::unique_ptr<SubspaceLock> lock;
    if (atlas) {
        lock = std::make_unique<SubspaceLock>(adapter, *atlas);
        spdlog::info("subspace lock on {} projections ({} atlas entries not adapted)", lock->locked_count(),
                     lock->unadapted().size());
    }

    BatcherOptions batching;
    batching.batch_size = config.batch_size;
    batching.seed = config.seed;
    Batcher batcher(std::move(train_examples.examples), batching);
    Trainer trainer(model, adapter, batcher, trainer_config(config, options.output_dir), lock.get());
    if (!resume_from.empty()) {
        trainer.resume(resume_from);
    }

    nlohmann::json record = config.to_json();
    record["model"] = options.model;
    record["data"] = options.data;
    record["atlas"] = options.atlas_dir.empty() ? nlohmann::json(nullptr) : nlohmann::json(options.atlas_dir);
    write_file_atomically((fs::path(options.output_dir) / "config.json").string(), record.dump(2) + "\n");

    // The Trainer appends step lines to metrics.jsonl; evaluation lines go to the same file
    // through a second append stream, opened after resume() has truncated it.
    const std::string metrics_path = (fs::path(options.output_dir) / "metrics.jsonl").string();
    std::ofstream metrics(metrics_path, std::ios::app);
    if (!metrics) {
        fail("cannot open '{}' for appending", metrics_path);
    }
    auto evaluate = [&](TrainRunResult& result) {
        if (heldout_examples.examples.empty()) {
            return;
        }
        const auto start = std::chrono::steady_clock::now();
        HeldoutLoss loss = heldout_loss(model, adapter, heldout_examples.examples, config.batch_size,
                                        trainer.steps_done());
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        spdlog::info("step {}: held-out loss {:.4f} over {} trained tokens ({:.1f} s)", loss.step, loss.loss,
                     loss.trained_tokens, seconds);
        nlohmann::json line = {{"step", loss.step},
                               {"heldout_loss", loss.loss},
                               {"heldout_trained_tokens", loss.trained_tokens},
                               {"seconds", seconds}};
        metrics << line.dump() << '\n';
        metrics.flush();
        result.heldout.push_back(loss);
    };

    // 5. Train. This mirrors Trainer::train() and adds progress lines and held-out evaluation.
    TrainRunResult result;
    spdlog::info("training from step {} to {}", trainer.steps_done(), config.max_steps);
    int64_t last_evaluated = -1;
    if (trainer.steps_done() == 0) {
        evaluate(result);   // the starting value that later held-out losses are read against
        last_evaluated = 0;
    }
    const std::string report_path = (fs::path(options.output_dir) / "report.html").string();
    ProgressBar progress("train", config.max_steps - trainer.steps_done());
    while (trainer.steps_done() < config.max_steps) {
        StepMetrics step = trainer.step();
        result.history.push_back(step);
        progress.set_postfix(fmt::format("loss {:.3f} lr {:.2g} {} {:.0f} tok/s", step.loss, step.lr, step.mode,
                                         step.seconds > 0.0 ? static_cast<double>(step.tokens) / step.seconds : 0.0));
        progress.advance();
        if (step.step % config.log_every == 0 || step.step == config.max_steps || step.step == 1) {
            log_step(step, config.max_steps);
        }
        if (options.on_step) {
            options.on_step(step);
        }
        if (training_stop_requested()) {
            result.stopped = true;
            break;
        }
        if (config.eval_every > 0 && step.step % config.eval_every == 0) {
            evaluate(result);
            last_evaluated = step.step;
        }
        if (config.checkpoint_every > 0 && step.step % config.checkpoint_every == 0 && step.step < config.max_steps) {
            result.last_checkpoint = trainer.save_checkpoint();
        }
    }
    progress.finish();
    result.last_checkpoint = trainer.save_checkpoint();
    result.steps = trainer.steps_done();
    if (result.stopped) {
        spdlog::warn("stop requested: stopped after step {}; resume with --resume from {}", result.steps,
                     result.last_checkpoint);
        write_train_report(options.output_dir, report_path);
        return result;
    }
    if (last_evaluated != result.steps) {
        evaluate(result);
    }
    const std::string adapter_dir = (fs::path(options.output_dir) / "adapter").string();
    adapter.save(adapter_dir);
    spdlog::info("adapter written to {}", adapter_dir);
    if (lock) {
        lock->write((fs::path(options.output_dir) / "lock.json").string());
        spdlog::info("lock.json written, max leak ratio {:.2e}", lock->max_leak_ratio());
    }
    write_train_report(options.output_dir, report_path);
    spdlog::info("report written to {}", report_path);
    return result;
}

}  // namespace sz
