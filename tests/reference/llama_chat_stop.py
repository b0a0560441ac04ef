"""Load an exported GGUF with llama.cpp (llama-cpp-python) and check how it will be used for
chat: the chat template it picks, its end-of-generation tokens, the sampling metadata, and
whether a chat completion stops at <end_of_turn>.

Input (JSON file, argument 1):
  {"model": GGUF_PATH, "messages": [{"role", "content"}], "free_tokens": N,
   "check_ids": [token ids whose end-of-generation status to report]}

Output (stdout, JSON):
  "chat_format": the handler llama-cpp-python chose ("chat_template.default" means the
                 file's own tokenizer.chat_template);
  "bos", "eos", "eot": llama.cpp's special ids; "is_eog": {id: bool} for check_ids;
  "sampling_metadata": {key: value as llama.cpp reads it, or null} for every key name that
                       libllama returns from llama_model_meta_key_str;
  "stop":    greedy chat completion whose logits are steered to ordinary tokens for N steps
             and to the end-of-turn token after that (a random-weight model would not end a
             turn by itself): finish_reason, prompt_tokens, completion_tokens, content;
  "control": the same with both end tokens suppressed throughout and max_tokens = N, so it
             must end with finish_reason "length";
  "log": llama.cpp's warning and error log lines (level WARN or ERROR) from loading.
"""
import ctypes
import json
import os
import sys

import numpy as np
import llama_cpp

# enum ggml_log_level in the ggml.h that llama-cpp-python 0.3.36 installs under include/
# (its _logger.py lists older values).
LOG_LEVEL_WARN = 3
LOG_LEVEL_ERROR = 4
LOG_LEVEL_CONTINUE = 5

captured = []
last_level = [0]


@llama_cpp.llama_log_callback
def capture_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    if level == LOG_LEVEL_CONTINUE:
        level = last_level[0]
    last_level[0] = level
    if level in (LOG_LEVEL_WARN, LOG_LEVEL_ERROR):
        captured.append(text.decode("utf-8", errors="replace").rstrip("\n"))


def steering_processor(end_id: int, other_end_id: int, free_tokens: int, force_end: bool):
    """Suppresses both end tokens for `free_tokens` steps, then forces `end_id` if asked."""
    prompt_length = [None]

    def process(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if prompt_length[0] is None:
            prompt_length[0] = len(input_ids)
        generated = len(input_ids) - prompt_length[0]
        scores = scores.copy()
        if force_end and generated >= free_tokens:
            scores[end_id] = scores.max() + 100.0
        else:
            scores[end_id] = -1e30
            scores[other_end_id] = -1e30
        return scores

    return llama_cpp.LogitsProcessorList([process])


def chat(llm, messages, processor, max_tokens):
    llm.reset()
    response = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0,
                                          logits_processor=processor, seed=1)
    choice = response["choices"][0]
    return {"finish_reason": choice["finish_reason"], "content": choice["message"]["content"],
            "prompt_tokens": response["usage"]["prompt_tokens"],
            "completion_tokens": response["usage"]["completion_tokens"]}


def main() -> None:
    with open(sys.argv[1]) as f:
        request = json.load(f)
    llama_cpp.llama_log_set(capture_log, ctypes.c_void_p(0))
    llm = llama_cpp.Llama(request["model"], n_ctx=512, n_threads=os.cpu_count(), verbose=False)
    # verbose=False installs llama-cpp-python's own log callback; restore the capturing one.
    llama_cpp.llama_log_set(capture_log, ctypes.c_void_p(0))

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    eos = llama_cpp.llama_vocab_eos(vocab)
    eot = llama_cpp.llama_vocab_eot(vocab)

    sampling = {}
    for index in range(64):
        key = llama_cpp.llama_model_meta_key_str(index)
        if key is None:
            break
        sampling[key.decode()] = llm.metadata.get(key.decode())

    free_tokens = int(request.get("free_tokens", 6))
    messages = request["messages"]
    stop = chat(llm, messages, steering_processor(eot, eos, free_tokens, True), free_tokens + 16)
    control = chat(llm, messages, steering_processor(eot, eos, free_tokens, False), free_tokens)

    json.dump({
        "chat_format": llm.chat_format,
        "bos": llama_cpp.llama_vocab_bos(vocab),
        "eos": eos,
        "eot": eot,
        "is_eog": {str(i): bool(llama_cpp.llama_vocab_is_eog(vocab, i)) for i in request.get("check_ids", [])},
        "sampling_metadata": sampling,
        "stop": stop,
        "control": control,
        "log": captured,
    }, sys.stdout)


if __name__ == "__main__":
    main()
