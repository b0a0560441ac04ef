#include "locate/corpus.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/chunked_cross_entropy.h"

namespace sz {

std::vector<std::vector<ChatMessage>> read_corpus(const std::string& path, int64_t max_rows) {
    std::ifstream in(path);
    if (!in) {
        fail("corpus file '{}' not found or not readable", path);
    }
    std::vector<std::vector<ChatMessage>> rows;
    std::string line;
    int64_t line_number = 0;
    while (std::getline(in, line) && (max_rows <= 0 || static_cast<int64_t>(rows.size()) < max_rows)) {
        ++line_number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) {
            continue;
        }
        nlohmann::json row;
        try {
            row = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error& e) {
            fail("{}:{}: invalid JSON: {}", path, line_number, e.what());
        }
        if (!row.is_object() || !row.contains("messages") || !row["messages"].is_array() || row["messages"].empty()) {
            fail("{}:{}: a corpus row must be an object with a non-empty \"messages\" list", path, line_number);
        }
        std::vector<ChatMessage> messages;
        for (const nlohmann::json& message : row["messages"]) {
            if (!message.is_object() || !message.contains("role") || !message.contains("content") ||
                !message["role"].is_string() || !message["content"].is_string()) {
                fail("{}:{}: every message needs string \"role\" and \"content\" fields", path, line_number);
            }
            messages.push_back({message["role"].get<std::string>(), message["content"].get<std::string>()});
        }
        rows.push_back(std::move(messages));
    }
    if (rows.empty()) {
        fail("corpus file '{}' has no rows", path);
    }
    return rows;
}

RenderedRow render_row(const std::vector<ChatMessage>& messages, const ChatTemplate& chat_template,
                       const Tokenizer& tokenizer, int64_t max_length) {
    RenderedRow row;
    const bool ends_with_reply = messages.back().role == "assistant" || messages.back().role == "model";
    if (ends_with_reply) {
        std::vector<ChatMessage> prompt(messages.begin(), messages.end() - 1);
        std::vector<int32_t> prefix = tokenizer.encode(chat_template.render(prompt, true), false, true);
        row.tokens = tokenizer.encode(chat_template.render(messages, false), false, true);
        if (row.tokens.size() <= prefix.size() || !std::equal(prefix.begin(), prefix.end(), row.tokens.begin())) {
            fail("the rendered reply does not extend the rendered prompt token by token (prompt of {} "
                 "tokens, conversation of {}); the chat template or tokenizer splits the turn boundary",
                 prefix.size(), row.tokens.size());
        }
        row.first_target = static_cast<int64_t>(prefix.size());
    } else {
        row.tokens = tokenizer.encode(chat_template.render(messages, true), false, true);
        row.first_target = 1;
    }
    // NOTE: long rows keep their head, so a long prompt can push the reply out; the check below
    // rejects a row that has no target left.
    if (static_cast<int64_t>(row.tokens.size()) > max_length) {
        row.tokens.resize(static_cast<size_t>(max_length));
    }
    if (row.first_target >= static_cast<int64_t>(row.tokens.size())) {
        fail("a corpus row has no measured tokens within max_length = {} (its prompt alone takes {} tokens); "
             "raise max_length or shorten the row", max_length, row.first_target);
    }
    return row;
}

TokenBatch make_batch(const std::vector<RenderedRow>& rows, int64_t begin, int64_t end, int32_t pad_id) {
    SZ_ASSERT(begin >= 0 && begin < end && end <= static_cast<int64_t>(rows.size()));
    const int64_t B = end - begin;
    int64_t T = 0;
    for (int64_t i = begin; i < end; ++i) {
        T = std::max(T, static_cast<int64_t>(rows[i].tokens.size()));
    }
    TokenBatch batch;
    batch.tokens = torch::full({B, T}, static_cast<int64_t>(pad_id), torch::kInt64);
    batch.mask = torch::zeros({B, T}, torch::kInt64);
    batch.targets = torch::zeros({B, T}, torch::kBool);
    auto tokens = batch.tokens.accessor<int64_t, 2>();
    auto mask = batch.mask.accessor<int64_t, 2>();
    auto targets = batch.targets.accessor<bool, 2>();
    for (int64_t b = 0; b < B; ++b) {
        const RenderedRow& row = rows[begin + b];
        const int64_t n = static_cast<int64_t>(row.tokens.size());
        const int64_t offset = T - n;
        for (int64_t t = 0; t < n; ++t) {
            tokens[b][offset + t] = row.tokens[t];
            mask[b][offset + t] = 1;
            targets[b][offset + t] = t >= row.first_target;
        }
    }
    // Last real position per row: the highest index whose mask is 1.
    torch::Tensor positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
    batch.last = (positions * batch.mask).amax(1);
    return batch;
}

MaskedLoss masked_cross_entropy(const torch::Tensor& logits, const TokenBatch& batch) {
    const int64_t V = logits.size(2);
    torch::Tensor predicted = logits.narrow(1, 0, logits.size(1) - 1).reshape({-1, V});
    torch::Tensor labels = batch.tokens.narrow(1, 1, batch.tokens.size(1) - 1).reshape({-1});
    torch::Tensor index = batch.targets.narrow(1, 1, batch.targets.size(1) - 1).reshape({-1}).nonzero().squeeze(1);
    MaskedLoss loss;
    loss.count = index.size(0);
    loss.sum = torch::nn::functional::cross_entropy(
        predicted.index_select(0, index), labels.index_select(0, index),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    return loss;
}

torch::Tensor predicting_positions(const TokenBatch& batch) {
    const int64_t T = batch.targets.size(1);
    torch::Tensor predicting = torch::zeros_like(batch.targets);
    predicting.narrow(1, 0, T - 1).copy_(batch.targets.narrow(1, 1, T - 1));
    return predicting;
}

MaskedLoss target_loss(CausalLM& model, const TokenBatch& batch, ForwardOptions options) {
    options.attention_mask = batch.mask;
    options.logit_positions = predicting_positions(batch);
    options.return_hidden = true;
    torch::Tensor hidden = model.forward(batch.tokens, options);   // [n, H], row-major
    const int64_t T = batch.tokens.size(1);
    torch::Tensor labels = batch.tokens.narrow(1, 1, T - 1).masked_select(batch.targets.narrow(1, 1, T - 1));
    const OutputHead head = model.output_head();
    MaskedLoss loss;
    loss.count = labels.size(0);
    loss.sum = chunked_cross_entropy(hidden, head.weight, head.softcap, labels, torch::Tensor());
    return loss;
}

}  // namespace sz
