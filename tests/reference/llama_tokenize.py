#!/usr/bin/env python3
"""Reference tokenizations and chat-template renderings for the C++ tokenizer tests.

Usage: llama_tokenize.py REQUEST.json  (prints the response JSON on stdout)

Request:
  {"model": "path/to/model.gguf",
   "cases": [{"text_hex": "...", "add_bos": true, "special": true}, ...],
   "templates": [{"source": "{{ bos_token }}...", "bos_token": "<bos>",
                  "messages": [{"role": "user", "content": "Hi"}],
                  "add_generation_prompt": true}, ...]}
Response:
  {"tokens": [[2, 9259, ...], ...],          # llama.cpp's tokenize(), one list per case
   "detokenized_hex": ["48656c6c6f", ...],   # llama.cpp's detokenize() of those ids
   "renders": [{"text": "..."} or {"error": "..."}, ...]}

Texts travel as hex so that invalid UTF-8 reaches llama.cpp unchanged. Tokenization uses
llama-cpp-python (llama_cpp.Llama with vocab_only=True); renderings use jinja2 configured as
Hugging Face transformers configures it for chat templates (trim_blocks, lstrip_blocks, a
raise_exception function).
"""

import json
import sys


def tokenize_cases(model_path, cases):
    if not cases:
        return [], []
    import llama_cpp

    model = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
    tokens = []
    detokenized = []
    for case in cases:
        text = bytes.fromhex(case["text_hex"])
        ids = model.tokenize(text, add_bos=case["add_bos"], special=case["special"])
        tokens.append(ids)
        detokenized.append(model.detokenize(ids).hex())
    return tokens, detokenized


def render_templates(templates):
    if not templates:
        return []
    import jinja2
    import jinja2.sandbox

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    renders = []
    for request in templates:
        try:
            template = environment.from_string(request["source"])
            text = template.render(
                messages=request["messages"],
                bos_token=request.get("bos_token", ""),
                add_generation_prompt=request.get("add_generation_prompt", False),
            )
            renders.append({"text": text})
        except jinja2.exceptions.TemplateError as error:
            renders.append({"error": str(error)})
    return renders


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: llama_tokenize.py REQUEST.json")
    with open(sys.argv[1], encoding="utf-8") as stream:
        request = json.load(stream)
    tokens, detokenized = tokenize_cases(request.get("model", ""), request.get("cases", []))
    response = {
        "tokens": tokens,
        "detokenized_hex": detokenized,
        "renders": render_templates(request.get("templates", [])),
    }
    json.dump(response, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
