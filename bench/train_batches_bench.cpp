// Writes the micro-batches that `subzero train` feeds to its first optimizer steps, so that
// bench/train_speed.py can give a peer trainer exactly the same token ids, padding and loss
// masks. It repeats run_training's data steps (load, split, tokenize, batch) with the same
// config keys and seed; it does not train.
//
//   build/train_batches_bench MODEL CONFIG.json DATA.jsonl STEPS OUT.json
//
// OUT.json: {"batches": [{"input_ids": [[...]], "attention_mask": [[...]], "loss_mask": [[...]]}]},
// one entry per micro-batch, STEPS * gradient_accumulation_steps entries in training order.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/conversation.h"
#include "data/split.h"
#include "data/tokenized_example.h"
#include "model/loader.h"
#include "train/train_run.h"

namespace {

nlohmann::json tensor_rows(const torch::Tensor& tensor) {
    const torch::Tensor values = tensor.to(torch::kInt64).contiguous();
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t row = 0; row < values.size(0); ++row) {
        const int64_t* data = values[row].data_ptr<int64_t>();
        rows.push_back(std::vector<int64_t>(data, data + values.size(1)));
    }
    return rows;
}

void write_batches(const std::string& model_name, const std::string& config_path, const std::string& data_path,
                   int64_t steps, const std::string& out_path) {
    const sz::TrainRunConfig config = sz::TrainRunConfig::from_file(config_path);
    config.validate(config_path);

    sz::ConversationOptions conversation_options;
    conversation_options.flip_roles = config.flip_roles;
    conversation_options.system_prompt = config.system_prompt;
    conversation_options.filter_disclaimers = config.filter_disclaimers;
    sz::LoadedConversations loaded_data = sz::load_conversations(std::vector<std::string>{data_path},
                                                                 conversation_options);

    sz::SplitOptions split_options;
    split_options.seed = config.seed;
    split_options.heldout_fraction = config.heldout_fraction;
    const sz::DataSplit split = sz::split_conversations(loaded_data.conversations, split_options);
    std::vector<sz::Conversation> train_part;
    for (size_t i : split.train) {
        train_part.push_back(loaded_data.conversations[i]);
    }

    const sz::LoadedModel loaded = sz::load_model(model_name);
    sz::TokenizeOptions tokenize_options;
    tokenize_options.max_tokens = config.max_tokens;
    tokenize_options.overlong = sz::parse_overlong_policy(config.overlong);
    sz::TokenizedExamples examples =
        sz::tokenize_conversations(train_part, *loaded.tokenizer, *loaded.chat_template, tokenize_options);

    // The same Batcher settings and cursor arithmetic as run_training and Trainer::next_window.
    sz::BatcherOptions batching;
    batching.batch_size = config.batch_size;
    batching.seed = config.seed;
    const sz::Batcher batcher(std::move(examples.examples), batching);
    const auto per_epoch = static_cast<int64_t>(batcher.batches_per_epoch());

    nlohmann::json batches = nlohmann::json::array();
    for (int64_t cursor = 0; cursor < steps * config.gradient_accumulation_steps; ++cursor) {
        const sz::Batch batch = batcher.batch(cursor / per_epoch, static_cast<size_t>(cursor % per_epoch));
        batches.push_back({{"input_ids", tensor_rows(batch.input_ids)},
                           {"attention_mask", tensor_rows(batch.attention_mask)},
                           {"loss_mask", tensor_rows(batch.loss_mask)}});
    }
    sz::write_file_atomically(out_path, nlohmann::json{{"batches", batches}}.dump() + "\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s MODEL CONFIG.json DATA.jsonl STEPS OUT.json\n", argv[0]);
        return 2;
    }
    try {
        write_batches(argv[1], argv[2], argv[3], std::stoll(argv[4]), argv[5]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
