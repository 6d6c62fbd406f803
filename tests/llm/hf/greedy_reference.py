"""The ground truth for the hf engine's greedy outputs: transformers' own ``generate``."""

import torch


def reference_greedy(engine, messages, max_tokens):
    """transformers' generate on the engine's model, full prompt, batch of one, greedy."""
    tok, model = engine.tokenizer, engine.model
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
    return tok.decode(out[0, ids.input_ids.shape[1] :], skip_special_tokens=True)
