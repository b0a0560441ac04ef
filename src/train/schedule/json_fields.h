// JSON helpers shared by the schedulers: reading user options with type checks, and reading
// saved state fields with errors that name the field.
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace sz::schedule_json {

// Reads a scheduler's options object. Each read() overwrites `value` when the key is present
// and leaves the default otherwise; finish() rejects keys that no read() asked for.
class OptionReader {
public:
    // Throws sz::Error unless `options` is a JSON object (null counts as empty).
    OptionReader(const nlohmann::json& options, std::string scheduler_name);

    void read(const std::string& key, int64_t& value);
    void read(const std::string& key, double& value);
    void read(const std::string& key, bool& value);
    void read(const std::string& key, std::string& value);

    // Throws sz::Error listing the unknown keys and the known ones.
    void finish() const;

private:
    const nlohmann::json* find(const std::string& key);

    nlohmann::json options_;
    std::string scheduler_name_;
    std::set<std::string> known_keys_;
};

// Saved-state readers. `what` names the field in error messages ("aecs state field 'mode'").
const nlohmann::json& require_field(const nlohmann::json& object, const std::string& key,
                                    const std::string& what);
int64_t read_int(const nlohmann::json& object, const std::string& key, const std::string& what);
std::string read_string(const nlohmann::json& object, const std::string& key, const std::string& what);
double read_exact_double(const nlohmann::json& object, const std::string& key, const std::string& what);

nlohmann::json exact_double_array(const std::deque<double>& values);
std::deque<double> read_exact_double_array(const nlohmann::json& object, const std::string& key,
                                           const std::string& what);

}  // namespace sz::schedule_json
