#include "train/schedule/json_fields.h"

#include <fmt/format.h>

#include "core/error.h"
#include "train/schedule/scheduler.h"

namespace sz::schedule_json {

OptionReader::OptionReader(const nlohmann::json& options, std::string scheduler_name)
    : options_(options.is_null() ? nlohmann::json::object() : options),
      scheduler_name_(std::move(scheduler_name)) {
    if (!options_.is_object()) {
        fail("invalid options for scheduler '{}': expected a JSON object of config fields, got {}",
             scheduler_name_, options_.dump());
    }
}

const nlohmann::json* OptionReader::find(const std::string& key) {
    known_keys_.insert(key);
    auto it = options_.find(key);
    return it == options_.end() ? nullptr : &*it;
}

void OptionReader::read(const std::string& key, int64_t& value) {
    const nlohmann::json* field = find(key);
    if (field == nullptr) {
        return;
    }
    if (!field->is_number_integer()) {
        fail("invalid option '{}' for scheduler '{}': expected an integer, got {}", key,
             scheduler_name_, field->dump());
    }
    value = field->get<int64_t>();
}

void OptionReader::read(const std::string& key, double& value) {
    const nlohmann::json* field = find(key);
    if (field == nullptr) {
        return;
    }
    if (!field->is_number()) {
        fail("invalid option '{}' for scheduler '{}': expected a number, got {}", key,
             scheduler_name_, field->dump());
    }
    value = field->get<double>();
}

void OptionReader::read(const std::string& key, bool& value) {
    const nlohmann::json* field = find(key);
    if (field == nullptr) {
        return;
    }
    if (!field->is_boolean()) {
        fail("invalid option '{}' for scheduler '{}': expected true or false, got {}", key,
             scheduler_name_, field->dump());
    }
    value = field->get<bool>();
}

void OptionReader::read(const std::string& key, std::string& value) {
    const nlohmann::json* field = find(key);
    if (field == nullptr) {
        return;
    }
    if (!field->is_string()) {
        fail("invalid option '{}' for scheduler '{}': expected a string, got {}", key,
             scheduler_name_, field->dump());
    }
    value = field->get<std::string>();
}

void OptionReader::finish() const {
    std::string unknown;
    for (const auto& item : options_.items()) {
        if (known_keys_.count(item.key()) == 0) {
            unknown += (unknown.empty() ? "" : ", ") + item.key();
        }
    }
    if (!unknown.empty()) {
        std::string known;
        for (const std::string& key : known_keys_) {
            known += (known.empty() ? "" : ", ") + key;
        }
        fail("unknown option(s) {} for scheduler '{}'; its options are: {}", unknown,
             scheduler_name_, known);
    }
}

const nlohmann::json& require_field(const nlohmann::json& object, const std::string& key,
                                    const std::string& what) {
    if (!object.is_object()) {
        fail("invalid {}: expected a JSON object holding '{}'", what, key);
    }
    auto it = object.find(key);
    if (it == object.end()) {
        fail("invalid {}: field '{}' is missing", what, key);
    }
    return *it;
}

int64_t read_int(const nlohmann::json& object, const std::string& key, const std::string& what) {
    const nlohmann::json& field = require_field(object, key, what);
    if (!field.is_number_integer()) {
        fail("invalid {}: field '{}' must be an integer, got {}", what, key, field.dump());
    }
    return field.get<int64_t>();
}

std::string read_string(const nlohmann::json& object, const std::string& key, const std::string& what) {
    const nlohmann::json& field = require_field(object, key, what);
    if (!field.is_string()) {
        fail("invalid {}: field '{}' must be a string, got {}", what, key, field.dump());
    }
    return field.get<std::string>();
}

double read_exact_double(const nlohmann::json& object, const std::string& key, const std::string& what) {
    const nlohmann::json& field = require_field(object, key, what);
    if (!field.is_string()) {
        fail("invalid {}: field '{}' must be a hex-float string, got {}", what, key, field.dump());
    }
    return exact_double_from_string(field.get<std::string>(), fmt::format("{} field '{}'", what, key));
}

nlohmann::json exact_double_array(const std::deque<double>& values) {
    nlohmann::json array = nlohmann::json::array();
    for (double value : values) {
        array.push_back(exact_double_to_string(value));
    }
    return array;
}

std::deque<double> read_exact_double_array(const nlohmann::json& object, const std::string& key,
                                           const std::string& what) {
    const nlohmann::json& field = require_field(object, key, what);
    if (!field.is_array()) {
        fail("invalid {}: field '{}' must be an array of hex-float strings, got {}", what, key,
             field.dump());
    }
    std::deque<double> values;
    for (size_t i = 0; i < field.size(); ++i) {
        if (!field[i].is_string()) {
            fail("invalid {}: element {} of '{}' must be a hex-float string, got {}", what, i, key,
                 field[i].dump());
        }
        values.push_back(exact_double_from_string(field[i].get<std::string>(),
                                                  fmt::format("{} field '{}'[{}]", what, key, i)));
    }
    return values;
}

}  // namespace sz::schedule_json
