#include "pipeline/run_pipeline.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fnv_hash.h"
#include "data/conversation.h"
#include "export/export.h"
#include "export/merge.h"
#include "locate/locate.h"
#include "locate/locate_report.h"
#include "model/loader.h"
#include "pipeline/run_eval.h"
#include "train/trainer.h"

namespace sz {

namespace fs = std::filesystem;

namespace {

std::string file_contents(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// run_state.json: per stage its fingerprint, "started" or "done", and seconds.
class RunState {
public:
    explicit RunState(std::string out) : path_((fs::path(out) / "run_state.json").string()) {
        if (fs::exists(path_)) {
            state_ = nlohmann::json::parse(file_contents(path_), nullptr, /*allow_exceptions=*/false);
            if (state_.is_discarded() || !state_.is_object()) {
                spdlog::warn("{} is unreadable; every stage runs again", path_);
                state_ = nlohmann::json::object();
            }
        }
        if (!state_.contains("stages")) {
            state_["stages"] = nlohmann::json::object();
        }
    }

    bool done(const std::string& stage, const std::string& fingerprint) const {
        const nlohmann::json& s = state_["stages"];
        return s.contains(stage) && s[stage].value("fingerprint", "") == fingerprint && s[stage].value("status", "") == "done";
    }
    // True when the stage was started with this fingerprint and not finished: its own cache
    // may be resumed. False when it never ran or ran with other settings.
    bool resumable(const std::string& stage, const std::string& fingerprint) const {
        const nlohmann::json& s = state_["stages"];
        return s.contains(stage) && s[stage].value("fingerprint", "") == fingerprint;
    }
    void mark(const std::string& stage, const std::string& fingerprint, const std::string& status, double seconds) {
        state_["stages"][stage] = {{"fingerprint", fingerprint}, {"status", status}, {"seconds", seconds}};
        save();
    }
    void set_config(const nlohmann::json& config) {
        state_["config"] = config;
        save();
    }
    const nlohmann::json& json() const { return state_; }

private:
    void save() const { write_file_atomically(path_, state_.dump(2) + "\n"); }
    std::string path_;
    nlohmann::json state_ = nlohmann::json::object();
};

std::string fingerprint(const std::vector<std::string>& parts) {
    Fnv1a64 hash;
    for (const std::string& part : parts) {
        hash.update(part);
    }
    return hash.hex();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Ollama recipe: the merged GGUF carries its chat template, so only the sampling is repeated
// here (Ollama reads PARAMETER lines, not general.sampling.*).
std::string ollama_modelfile(const SamplerParams& s) {
    return fmt::format(
        "# Ollama: ollama create my-voice -f Modelfile && ollama run my-voice\n"
        "FROM ./model.gguf\n"
        "PARAMETER temperature {}\nPARAMETER min_p {}\nPARAMETER top_p {}\nPARAMETER repeat_penalty {}\n"
        "PARAMETER repeat_last_n {}\nPARAMETER stop <end_of_turn>\n",
        s.temp, s.min_p, s.top_p, s.repeat_penalty, s.repeat_last_n);
}

// Everything checked before the first stage: the model loads, the data parse, the output
// folder is writable. Loading the model here costs seconds and saves a failure after locate.
void check_inputs(const RunConfig& config) {
    ConversationOptions data_options;
    data_options.flip_roles = config.train.flip_roles;
    data_options.system_prompt = config.train.system_prompt;
    LoadedConversations data = load_conversations(config.data, data_options);
    if (data.conversations.empty()) {
        fail("{}: the data files hold no usable conversation ({})", config.source, data.report.summary());
    }
    spdlog::info("data: {}", data.report.summary());
    if (!config.heldout.empty()) {
        load_conversations(config.heldout, ConversationOptions{});
    }
    check_eval_settings(config.eval, config.source + ": eval");

    if (fs::exists(config.out) && !fs::is_directory(config.out)) {
        fail("run folder '{}' exists and is not a folder; set 'out' in {} or pass --out DIR", config.out, config.source);
    }
    fs::create_directories(config.out);
    const fs::path probe = fs::path(config.out) / ".write-test";
    {
        std::ofstream out(probe);
        if (!out || !(out << "x")) {
            fail("run folder '{}' is not writable", config.out);
        }
    }
    fs::remove(probe);
}

}  // namespace

RunResult run_pipeline(const RunConfig& config) {
    const auto run_start = std::chrono::steady_clock::now();
    check_inputs(config);
    LoadedModel probe = load_model(config.model);   // fails early on a bad model path
    const std::string model_hash = model_identity(*probe.model).dump();
    const std::string model_name =
        probe.model->config().name.empty() ? fs::path(config.model).stem().string() : probe.model->config().name;
    probe = LoadedModel();

    RunState state(config.out);
    state.set_config(config.to_json());
    const fs::path out(config.out);
    const std::string atlas_dir = (out / "atlas").string();
    const std::string train_dir = (out / "train").string();
    const std::string gguf_path = (out / "model.gguf").string();
    const std::string eval_dir = (out / "eval").string();

    std::string data_hash;
    for (const std::string& file : config.data) {
        data_hash += fingerprint({file_contents(file)});
    }
    const std::string locate_fp = fingerprint({model_hash, config.locate_enabled ? config.locate.to_json().dump() : "off",
                                               config.locate_enabled ? fingerprint({file_contents(config.locate.corpus_dir + "/corp.jsonl"),
                                                                                    file_contents(config.locate.corpus_dir + "/authentic.jsonl")})
                                                                     : ""});
    const std::string train_fp = fingerprint({locate_fp, config.train.to_json().dump(), data_hash});
    nlohmann::json export_json = config.to_json()["export"];
    const std::string export_fp = fingerprint({train_fp, export_json.dump()});
    const std::string eval_fp = fingerprint({export_fp, config.eval.dump(), config.heldout.empty() ? "" : file_contents(config.heldout)});

    // 1. Locate.
    if (!config.locate_enabled) {
        spdlog::info("[1/4] locate: off in the config; training without surgery or lock");
    } else if (state.done("locate", locate_fp) && fs::exists(fs::path(atlas_dir) / "atlas.json")) {
        spdlog::info("[1/4] locate: done in an earlier run, atlas in {}", atlas_dir);
    } else {
        spdlog::info("[1/4] locate: finding the bouncer directions");
        const auto start = std::chrono::steady_clock::now();
        state.mark("locate", locate_fp, "started", 0.0);
        LoadedModel loaded = load_model(config.model);
        Atlas atlas = locate({*loaded.model, *loaded.tokenizer, *loaded.chat_template, model_name}, config.locate, atlas_dir,
               [](const StageReport& report) {
                   spdlog::info("  locate stage {}/9 {}: {} ({:.1f} s{})", report.stage, report.name, report.detail,
                                report.seconds, report.from_cache ? ", cached" : "");
               });
        const nlohmann::json timings = read_locate_timings(atlas_dir);
        write_locate_report(atlas, timings, (fs::path(atlas_dir) / "report.html").string());
        spdlog::info("locate summary:\n{}", locate_summary(atlas, timings));
        state.mark("locate", locate_fp, "done", seconds_since(start));
    }

    // 2. Train. A run started with the same fingerprint resumes from its checkpoint; one made
    // with other settings is moved aside, never mixed with the new one.
    RunResult result;
    result.out = config.out;
    result.gguf_path = gguf_path;
    if (state.done("train", train_fp) && fs::exists(fs::path(train_dir) / "adapter" / "adapter_config.json")) {
        spdlog::info("[2/4] train: done in an earlier run, adapter in {}/adapter", train_dir);
    } else {
        TrainRunOptions options;
        options.model = config.model;
        options.data = config.data;
        options.output_dir = train_dir;
        options.atlas_dir = config.locate_enabled ? atlas_dir : "";
        options.config = config.train;
        options.config_source = config.source + ": train";
        const bool has_checkpoint = fs::exists(fs::path(train_dir) / "checkpoints" / "latest");
        if (has_checkpoint && state.resumable("train", train_fp)) {
            options.resume = true;
            spdlog::info("[2/4] train: resuming the interrupted run in {}", train_dir);
        } else {
            if (fs::exists(train_dir)) {
                const std::string aside = train_dir + ".previous";
                fs::remove_all(aside);
                fs::rename(train_dir, aside);
                spdlog::info("[2/4] train: settings changed; the earlier run was moved to {}", aside);
            }
            spdlog::info("[2/4] train: LoRA on {} file(s), {} steps", config.data.size(), config.train.max_steps);
        }
        const auto start = std::chrono::steady_clock::now();
        state.mark("train", train_fp, "started", 0.0);
        // Only training has stop points: it writes a checkpoint after the current step. In the
        // other stages SIGINT and SIGTERM end the process at once, and a rerun resumes from the
        // stage caches.
        install_stop_signal_handlers();
        TrainRunResult trained = run_training(options);
        restore_default_stop_signal_handlers();
        if (trained.stopped) {
            result.summary = fmt::format("stopped during training after step {}; run the same `subzero run` command "
                                         "again to resume from the checkpoint", trained.steps);
            return result;
        }
        state.mark("train", train_fp, "done", seconds_since(start));
    }

    // 3. Export: merge surgery and adapter, write the GGUF, the Modelfile and the PEFT adapter.
    ExportOptions export_options;
    export_options.gguf_path = gguf_path;
    export_options.gguf_type = parse_weight_type(config.export_settings.outtype);
    export_options.metadata.name =
        config.export_settings.name.empty() ? model_name + " (subzero)" : config.export_settings.name;
    if (config.export_settings.hf) {
        export_options.hf_dir = (out / "hf").string();
    }
    if (state.done("export", export_fp) && fs::exists(gguf_path)) {
        spdlog::info("[3/4] export: done in an earlier run, {}", gguf_path);
    } else {
        spdlog::info("[3/4] export: merging and writing {}", gguf_path);
        const auto start = std::chrono::steady_clock::now();
        state.mark("export", export_fp, "started", 0.0);
        LoadedModel loaded = load_model(config.model);
        Tuning tuning = read_tuning(loaded, {config.locate_enabled ? atlas_dir : "", (fs::path(train_dir) / "adapter").string()});
        if (config.export_settings.peft) {
            write_combined_peft_adapter(loaded, tuning, (out / "peft-adapter").string());
        }
        merge_tuning(loaded, tuning);
        export_model(loaded, export_options);
        write_file_atomically((out / "Modelfile").string(), ollama_modelfile(export_options.metadata.sampling));
        state.mark("export", export_fp, "done", seconds_since(start));
    }

    // 4. Eval: base against the exported file, so the numbers describe what users run.
    std::string table;
    if (state.done("eval", eval_fp) && fs::exists(fs::path(eval_dir) / "eval.json")) {
        spdlog::info("[4/4] eval: done in an earlier run, {}", eval_dir);
        table = eval_table_from_dir(eval_dir);
    } else {
        spdlog::info("[4/4] eval: base against tuned");
        const auto start = std::chrono::steady_clock::now();
        state.mark("eval", eval_fp, "started", 0.0);
        table = run_eval_stage(config.model, gguf_path, config.heldout, config.eval, config.seed, eval_dir);
        state.mark("eval", eval_fp, "done", seconds_since(start));
    }

    write_run_report(config.out, state.json());
    result.finished = true;
    result.summary = fmt::format(
        "{}\nrun folder: {} ({:.1f} min this call)\n"
        "chat with the result:\n"
        "  subzero chat {}\n"
        "  llama-cli -m {} -cnv\n"
        "  ollama create my-voice -f {}/Modelfile && ollama run my-voice\n"
        "report: {}/report.html",
        table, config.out, seconds_since(run_start) / 60.0, gguf_path, gguf_path, config.out, config.out);
    return result;
}

}  // namespace sz
