#include "eval/model_pair.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/model_path.h"

namespace sz {

namespace {

std::string canonical_path(const std::string& name) {
    const std::string resolved = resolve_model_path(name);
    std::error_code error;
    const std::filesystem::path canonical = std::filesystem::weakly_canonical(resolved, error);
    return error ? resolved : canonical.string();
}

}  // namespace

void check_same_vocabulary(const Vocab& base, const Vocab& tuned, const std::string& base_name,
                           const std::string& tuned_name) {
    const std::string advice =
        "the KL divergence and shared prompts need one tokenizer; compare a model with a fine-tune of it";
    if (base.size() != tuned.size()) {
        fail("the base model '{}' has {} tokens but the tuned model '{}' has {}; {}", base_name, base.size(),
             tuned_name, tuned.size(), advice);
    }
    for (int32_t id = 0; id < base.size(); ++id) {
        if (base.pieces[static_cast<size_t>(id)] != tuned.pieces[static_cast<size_t>(id)]) {
            fail("the base model '{}' and the tuned model '{}' have different vocabularies: token {} is '{}' in "
                 "one and '{}' in the other; {}",
                 base_name, tuned_name, id, base.pieces[static_cast<size_t>(id)],
                 tuned.pieces[static_cast<size_t>(id)], advice);
        }
    }
    if (base.bos_id != tuned.bos_id || base.eot_id != tuned.eot_id) {
        fail("the base model '{}' and the tuned model '{}' disagree on special tokens (BOS {} vs {}, end of turn "
             "{} vs {}); {}",
             base_name, tuned_name, base.bos_id, tuned.bos_id, base.eot_id, tuned.eot_id, advice);
    }
}

ModelPair load_model_pair(const std::string& base_name, const std::string& tuned_name, const std::string& adapter_dir) {
    if (tuned_name.empty() && adapter_dir.empty()) {
        fail("no tuned model: pass --tuned MODEL, or --adapter DIR to evaluate the base model with a LoRA adapter");
    }
    ModelPair pair;
    pair.base_name = base_name;
    pair.tuned_name = tuned_name.empty() ? base_name : tuned_name;
    pair.adapter_dir = adapter_dir;

    // Resolve both names before loading either, so a typo in --tuned fails fast.
    const std::string base_path = canonical_path(base_name);
    const std::string tuned_path = canonical_path(pair.tuned_name);

    pair.base = std::make_shared<LoadedModel>(load_model(base_name));
    if (tuned_path == base_path) {
        pair.tuned = pair.base;
    } else {
        pair.tuned = std::make_shared<LoadedModel>(load_model(pair.tuned_name));
    }
    check_same_vocabulary(pair.base->tokenizer->vocab(), pair.tuned->tokenizer->vocab(), base_name, pair.tuned_name);
    if (pair.base->model->config().n_vocab != pair.tuned->model->config().n_vocab) {
        fail("the base model '{}' has {} output logits but the tuned model '{}' has {}; both need one per token",
             base_name, pair.base->model->config().n_vocab, pair.tuned_name, pair.tuned->model->config().n_vocab);
    }
    if (!adapter_dir.empty()) {
        pair.tuned_adapter = std::make_shared<LoraAdapter>(LoraAdapter::load(adapter_dir, *pair.tuned->model));
    }
    return pair;
}

}  // namespace sz
