"""Read an exported GGUF with the `gguf` package and render its chat template with jinja2, as
the independent reference for tests/export_test.cpp.

Input (JSON file, argument 1):
  {"model": GGUF_PATH,
   "conversations": [{"messages": [{"role", "content"}], "add_generation_prompt": bool}]}

Output (stdout, JSON):
  "metadata": {key: {"type": GGUF value type name, "element_type": name or null,
                     "value": scalar, string or list}} without the GGUF.* header fields;
  "tensors": {name: {"type": ggml type name, "ne": [...]}};
  "renders": one string per conversation, or {"error": message} when the template raises.

The template is rendered the way transformers and llama-cpp-python render chat templates:
a sandboxed jinja2 environment with trim_blocks and lstrip_blocks, the variables messages,
bos_token, eos_token and add_generation_prompt, and a raise_exception function.
"""
import json
import sys

from gguf import GGUFReader, GGUFValueType
from jinja2.sandbox import ImmutableSandboxedEnvironment


def field_value(field):
    value = field.contents()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def render(template: str, conversation: dict, bos_token: str, eos_token: str):
    def raise_exception(message: str):
        raise ValueError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        return environment.from_string(template).render(
            messages=conversation["messages"],
            add_generation_prompt=conversation.get("add_generation_prompt", False),
            bos_token=bos_token,
            eos_token=eos_token,
            raise_exception=raise_exception,
        )
    except ValueError as error:
        return {"error": str(error)}


def main() -> None:
    with open(sys.argv[1]) as f:
        request = json.load(f)
    reader = GGUFReader(request["model"])

    metadata = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        types = field.types
        metadata[key] = {
            "type": types[0].name,
            "element_type": types[1].name if types[0] == GGUFValueType.ARRAY and len(types) > 1 else None,
            "value": field_value(field),
        }

    tensors = {t.name: {"type": t.tensor_type.name, "ne": [int(n) for n in t.shape]} for t in reader.tensors}

    renders = []
    template = metadata.get("tokenizer.chat_template", {}).get("value")
    if template is not None:
        tokens = metadata["tokenizer.ggml.tokens"]["value"]
        bos = tokens[metadata["tokenizer.ggml.bos_token_id"]["value"]]
        eos = tokens[metadata["tokenizer.ggml.eos_token_id"]["value"]]
        renders = [render(template, conversation, bos, eos) for conversation in request.get("conversations", [])]

    json.dump({"metadata": metadata, "tensors": tensors, "renders": renders}, sys.stdout)


if __name__ == "__main__":
    main()
