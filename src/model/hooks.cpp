#include "model/hooks.h"

#include "core/error.h"

namespace sz {

void Hooks::add(const std::string& name, HookFn fn) { hooks_[name].push_back(std::move(fn)); }

std::vector<std::string> Hooks::names() const {
    std::vector<std::string> result;
    for (const auto& [name, fns] : hooks_) {
        result.push_back(name);
    }
    return result;
}

torch::Tensor Hooks::run(const std::string& name, torch::Tensor activation) const {
    auto it = hooks_.find(name);
    if (it == hooks_.end()) {
        return activation;
    }
    for (const HookFn& fn : it->second) {
        torch::Tensor replaced = fn(activation, name);
        if (!replaced.defined() || replaced.sizes() != activation.sizes()) {
            fail("hook at '{}' returned a tensor of shape {} but the model expects {}", name,
                 replaced.defined() ? fmt::format("{}", fmt::join(replaced.sizes(), "x")) : "undefined",
                 fmt::join(activation.sizes(), "x"));
        }
        activation = replaced;
    }
    return activation;
}

void ActivationCache::attach(Hooks& hooks, const std::vector<std::string>& names) {
    for (const std::string& name : names) {
        hooks.add(name, [this](const torch::Tensor& activation, const std::string& hook_name) {
            store_[hook_name] = activation.detach().clone();
            return activation;
        });
    }
}

const torch::Tensor& ActivationCache::at(const std::string& name) const {
    auto it = store_.find(name);
    if (it == store_.end()) {
        fail("no activation captured at '{}'; was the hook attached and the forward run?", name);
    }
    return it->second;
}

}  // namespace sz
