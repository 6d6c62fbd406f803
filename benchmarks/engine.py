"""How fast the local engine serves agent-shaped traffic, and why.

Agents re-send their whole prompt every step: a system prompt with an
example, the task, and the history so far. This benchmark replays that
shape: ``--episodes`` concurrent episodes of ``--turns`` append-only turns
each, where every turn appends the model's own (stop-trimmed) reply and a
new observation. Four ways to serve it:

  a. ``HFEngine``: continuous batching + prefix KV reuse (the default engine)
  b. plain transformers: per turn, one left-padded batch of all episodes'
     full prompts through ``model.generate`` (what one would write first)
  c. ``HFEngine`` with the prefix cache off (batching only)
  d. ``CT2Engine``: the same model through CTranslate2 (int8 by default),
     one request at a time, reusing each episode's cached static prompt

Greedy decoding everywhere, so a, b and c see the same conversations (the
table shows the token totals, so a divergence would be visible). Prints a
table and writes ``benchmarks/results/engine.json``.

    python benchmarks/engine.py                      # ~a few minutes on 2 cores
    python benchmarks/engine.py --episodes 4 --turns 4 --variants a,c

``--compare REV`` instead measures engines side by side, each in its own
process, back to back: the engine as of git revision ``REV`` (exported with
``git archive``, so "previous" is that code, not a switch in this one), the
checked-out engine with its defaults (``quantize=auto``: the embedded GGUF's 4-bit
weights on an AVX-512 CPU), with ``quantize=none`` (float32) and with ``quantize=int8``,
and the CTranslate2 engine (int8, and float32 with ``quantize=none``).
For each: prefill tokens/s (one ~600-token prompt, no prefix cache),
single-stream and batch-8 decode tokens/s (the time of 33-token generations
minus that of 1-token ones, over the tokens between), and the agent workload
above (variant a). Prints the numbers and their ratios to the first engine and
writes ``benchmarks/results/engine_compare.json``.

    python benchmarks/engine.py --compare REV --threads 1      # REV: any git revision, e.g. a tag

On a CPU shared with other busy processes, pass ``--threads 1``: a
descheduled OpenMP thread makes every op of the others wait. Do not set
``OMP_WAIT_POLICY=PASSIVE`` to compare engines: it makes every op pay a
thread wake-up (``compound.llm.hf.HFEngine``). The load average and the
policy are recorded with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

# --compare runs this file again with COMPOUND_BENCH_SRC naming another tree's export.
sys.path.insert(0, os.environ.get("COMPOUND_BENCH_SRC") or str(Path(__file__).resolve().parents[1]))

from compound.llm.hf import HFEngine  # noqa: E402

SYSTEM = """You are an agent playing a text adventure. Each turn you read the latest observation and reply with exactly one action on one line, and nothing else. Valid actions look like: look, inventory, go north, go south, go east, go west, open <thing>, close <thing>, take <thing>, put <thing> in <container>, unlock <door> with <key>. Think about where the goal object is likely to be, avoid repeating actions that did nothing, and pick up useful items when you see them.

Here is an example of a successful episode:
Task: put the apple in the fridge.
Observation: You are in the pantry. There is a basket here. Exits: east.
Action: open basket
Observation: You open the basket. Inside you see an apple and a loaf of bread.
Action: take apple
Observation: You take the apple.
Action: go east
Observation: You are in the kitchen. There is a fridge, an oven and a table. Exits: west, north.
Action: open fridge
Observation: You open the fridge. It is empty.
Action: put apple in fridge
Observation: You put the apple in the fridge. Task complete!

Now solve the new task. Reply with the action only."""

ROOMS = ["hallway", "kitchen", "cellar", "library", "garden", "attic", "study", "bedroom", "bathroom", "garage"]
THINGS = ["a lamp", "a wooden chest", "a locked door", "a rusty key", "a bookshelf", "a table", "a cupboard", "a coat"]


def task_message(episode: int) -> str:
    room = ROOMS[episode % len(ROOMS)]
    return f"Task: find the golden key and bring it to the {room}.\nObservation: You are in the {room}. Exits: north, east."


def observation(episode: int, turn: int) -> str:
    room = ROOMS[(episode + turn + 1) % len(ROOMS)]
    seen = ", ".join(THINGS[(episode * 3 + turn + k) % len(THINGS)] for k in range(3))
    return f"Observation: You are in the {room}. You see {seen}. Exits: north, south, west."


def first_messages(episode: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task_message(episode)}]


def extend(messages: list[dict[str, str]], reply: str, episode: int, turn: int) -> None:
    messages.append({"role": "assistant", "content": reply.strip() or "look"})
    messages.append({"role": "user", "content": observation(episode, turn)})


# ---- variants --------------------------------------------------------------------


def engine_options(args: argparse.Namespace) -> dict:
    """Only the options given: the engine of an older revision may not know them."""
    return {"quantize": args.quantize} if getattr(args, "quantize", None) else {}


def make_engine(args: argparse.Namespace, max_batch: int, prefix_cache_tokens: int, reuse_replies: bool = True):
    """The engine ``--engine`` names: the hf engine, or CTranslate2 (``compound.llm.ct2``, one request at a time).

    ``reuse_replies=False`` turns the hf engine's reply reuse off where it has
    one: the micro numbers repeat a prompt and must time the model, not the cache.
    """
    if getattr(args, "engine", "hf") == "ct2":
        from compound.llm.ct2 import CT2Engine

        return CT2Engine(threads=args.threads or 1, **engine_options(args))
    options = engine_options(args)
    if not reuse_replies and "reuse_replies" in inspect.signature(HFEngine).parameters:
        options["reuse_replies"] = False
    return HFEngine(max_batch=max_batch, prefix_cache_tokens=prefix_cache_tokens, **options)


DECODE_TOKENS = 32


def micro(args: argparse.Namespace) -> dict:
    """Prefill and decode rates of one engine, through its public API only."""
    engine = make_engine(args, 8, 0, reuse_replies=False)
    # one message: nothing for CTranslate2's static-prompt cache to reuse either, so this is prefill
    long_prompt = [{"role": "user", "content": SYSTEM + "\n\n" + SYSTEM + "\n" + task_message(0)}]
    stories = [[{"role": "user", "content": f"Write a long story about a {w} who learns to cook."}] for w in THINGS]

    async def timed(prompts: list, max_tokens: int) -> tuple[float, int, int]:
        t0 = time.perf_counter()
        outs = await asyncio.gather(*(engine.generate(p, max_tokens=max_tokens) for p in prompts))
        return time.perf_counter() - t0, sum(o.completion_tokens for o in outs), sum(o.prompt_tokens for o in outs)

    async def main() -> dict:
        await engine.generate(stories[0], max_tokens=4)  # warm-up
        wall, _, n_prompt = min([await timed([long_prompt], 1) for _ in range(2)])
        out = {"prefill_tokens": n_prompt, "prefill_tok_s": n_prompt / wall}
        for rows in (1, 8):
            short = min([await timed(stories[:rows], 1) for _ in range(2)])
            long_ = await timed(stories[:rows], DECODE_TOKENS + 1)
            out[f"decode{rows}_tok_s"] = (long_[1] - short[1]) / (long_[0] - short[0])
            out[f"decode{rows}_tokens"] = long_[1]
        return out

    result = asyncio.run(main())
    result["quantize"] = getattr(engine, "quantize", "none (no option)")
    engine.close()
    return result


def compare(args: argparse.Namespace) -> dict:
    """Run the previous engine, the current one in three settings and CTranslate2's in fresh processes, one after another."""
    import subprocess
    import tempfile

    here = Path(__file__).resolve()
    export = Path(tempfile.mkdtemp(prefix="compound-prev-"))
    subprocess.run(f"git -C {here.parents[1]} archive {args.compare} | tar -x -C {export}", shell=True, check=True)
    engines = {
        f"previous ({args.compare})": ({"COMPOUND_BENCH_SRC": str(export)}, []),
        "current (defaults)": ({}, []),
        "current, quantize=none": ({}, ["--quantize", "none"]),
        "current, quantize=int8": ({}, ["--quantize", "int8"]),
        "ct2 (int8)": ({}, ["--engine", "ct2"]),
        "ct2, quantize=none": ({}, ["--engine", "ct2", "--quantize", "none"]),
    }
    common = ["--episodes", str(args.episodes), "--turns", str(args.turns), "--max-tokens", str(args.max_tokens)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    results, failed = {}, {}
    for name, (env, extra) in engines.items():
        print(f"measuring {name} ...", flush=True)
        proc = subprocess.run(
            [sys.executable, str(here), "--worker", *common, *extra], env={**os.environ, **env},
            stdout=subprocess.PIPE, text=True,
        )
        lines = proc.stdout.strip().splitlines()
        if lines and lines[-1].startswith("{"):  # measured (a crash while the process exits loses nothing)
            results[name] = json.loads(lines[-1])
            if proc.returncode:
                print(f"  ({name}: its process exited with code {proc.returncode} after reporting)")
        else:
            failed[name] = f"exit code {proc.returncode}, no result"
            print(f"  {name} failed: {failed[name]}; the other engines are still measured")
    if not results:
        raise SystemExit(f"no engine could be measured: {failed}")
    base = next(iter(results.values()))
    header = f"{'engine':<28} {'prefill tok/s':>13} {'decode 1 tok/s':>14} {'decode 8 tok/s':>14} {'agent wall s':>12} {'agent x':>8}"
    print("\n" + header + "\n" + "-" * len(header))
    for name, r in results.items():
        ratio = base["agent"]["wall_s"] / r["agent"]["wall_s"]
        print(
            f"{name:<28} {r['prefill_tok_s']:>13.0f} {r['decode1_tok_s']:>14.1f} {r['decode8_tok_s']:>14.1f} "
            f"{r['agent']['wall_s']:>12.1f} {ratio:>7.2f}x"
        )
    for name, r in list(results.items())[1:]:
        print(
            f"{name} vs previous: prefill {r['prefill_tok_s'] / base['prefill_tok_s']:.2f}x, decode 1 "
            f"{r['decode1_tok_s'] / base['decode1_tok_s']:.2f}x, decode 8 {r['decode8_tok_s'] / base['decode8_tok_s']:.2f}x, "
            f"agent workload {base['agent']['wall_s'] / r['agent']['wall_s']:.2f}x"
        )
    return {**results, **{name: {"failed": why} for name, why in failed.items()}}


def run_engine(args: argparse.Namespace, prefix_cache_tokens: int) -> dict:
    engine = make_engine(args, args.episodes, prefix_cache_tokens)
    warm = [{"role": "user", "content": "hi"}]
    asyncio.run(engine.generate(warm, max_tokens=2))
    if hasattr(engine, "clear_prefix_cache"):
        engine.clear_prefix_cache()
    before = dict(vars(engine.stats)) if hasattr(engine, "stats") else None
    completions: list = []
    texts: list[list[str]] = [[] for _ in range(args.episodes)]

    async def episode(e: int) -> None:
        messages, replies = first_messages(e), texts[e]
        for t in range(args.turns):
            c = await engine.generate(messages, max_tokens=args.max_tokens, stop=["\n"])
            completions.append(c)
            replies.append(c.text)
            extend(messages, c.text, e, t)

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(episode(e) for e in range(args.episodes)))
        return time.perf_counter() - started

    wall = asyncio.run(main())
    steps = vars(engine.stats)["decode_steps"] - before["decode_steps"] if before else None
    engine.close()
    prompt = sum(c.prompt_tokens for c in completions)
    cached = sum(c.cached_prompt_tokens for c in completions)
    return {
        "wall_s": wall,
        "requests": len(completions),
        "prompt_tokens": prompt,
        "prefilled_tokens": prompt - cached,
        "cached_prompt_tokens": cached,
        "completion_tokens": sum(c.completion_tokens for c in completions),
        "decode_steps": steps,
        "mean_latency_s": statistics.mean(c.latency_s for c in completions),
        "replies": texts,
    }


def run_plain_generate(args: argparse.Namespace) -> dict:
    """Lock-step turns; each turn one padded batch of full prompts through ``generate``."""
    engine = HFEngine(max_batch=1, prefix_cache_tokens=0, **engine_options(args))  # the same model (and quantisation)
    model, tok = engine.model, engine.tokenizer
    engine.close()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    conversations = [first_messages(e) for e in range(args.episodes)]
    replies: list[list[str]] = [[] for _ in range(args.episodes)]
    prompt_tokens = padded_tokens = completion_tokens = 0
    turn_times: list[float] = []
    generate_kwargs = dict(do_sample=False, stop_strings=["\n"], tokenizer=tok, pad_token_id=tok.pad_token_id)
    with torch.inference_mode():  # warm-up: stop-string tables and first-call overheads are not timed
        model.generate(**tok(["hi"], return_tensors="pt"), max_new_tokens=2, **generate_kwargs)
    started = time.perf_counter()
    with torch.inference_mode():
        for t in range(args.turns):
            t0 = time.perf_counter()
            texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in conversations]
            batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**batch, max_new_tokens=args.max_tokens, **generate_kwargs)
            prompt_tokens += int(batch.attention_mask.sum())
            padded_tokens += batch.input_ids.numel()
            for e in range(args.episodes):
                new = out[e, batch.input_ids.shape[1] :].tolist()
                ids = [i for i in new if i not in (tok.pad_token_id, tok.eos_token_id)]
                completion_tokens += len(ids)
                text = tok.decode(ids, skip_special_tokens=True).split("\n")[0]
                replies[e].append(text)
                extend(conversations[e], text, e, t)
            turn_times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "requests": args.episodes * args.turns,
        "prompt_tokens": prompt_tokens,
        "prefilled_tokens": padded_tokens,
        "cached_prompt_tokens": 0,
        "completion_tokens": completion_tokens,
        "decode_steps": None,
        "mean_latency_s": statistics.mean(turn_times),
        "replies": replies,
    }


VARIANTS = {
    "a": ("HFEngine: prefix cache + continuous batching", lambda args: run_engine(args, args.prefix_cache_tokens)),
    "b": ("plain batched model.generate, full prompts", run_plain_generate),
    "c": ("HFEngine: batching, no prefix cache", lambda args: run_engine(args, 0)),
    "d": ("CT2Engine: static-prompt reuse, serial", lambda args: run_engine(argparse.Namespace(**{**vars(args), "engine": "ct2"}), 0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=12)
    parser.add_argument("--prefix-cache-tokens", type=int, default=16384)
    parser.add_argument("--variants", default="a,b,c")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quantize", default=None, help="engine quantize option (default: the engine's own)")
    parser.add_argument("--engine", choices=["hf", "ct2"], default="hf", help="--worker: which engine to measure")
    parser.add_argument("--compare", metavar="REV", default=None, help="compare REV's engine with the checked-out one's (see above)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:  # one engine of --compare: micro numbers + the agent workload, as one JSON line
        record = micro(args)
        record["agent"] = {k: v for k, v in run_engine(args, args.prefix_cache_tokens).items() if k != "replies"}
        print(json.dumps(record))
        return
    name = "engine_compare.json" if args.compare else "engine.json"
    args.out = args.out or str(Path(__file__).parent / "results" / name)

    record_load_start = os.getloadavg()
    if args.compare:
        write(args, record_load_start, {"benchmark": "engine_compare", "results": compare(args)})
        return
    results = {}
    for key in args.variants.split(","):
        name, run = VARIANTS[key]
        print(f"running ({key}) {name} ...", flush=True)
        results[key] = {"name": name, **run(args)}

    header = f"{'variant':<48} {'wall s':>8} {'prompt':>8} {'prefill':>8} {'cached':>8} {'gen':>6} {'gen tok/s':>9} {'all tok/s':>9} {'lat s':>6}"
    print("\n" + header)
    print("-" * len(header))
    for key, r in results.items():
        total = r["prompt_tokens"] + r["completion_tokens"]
        r["completion_tokens_per_s"] = r["completion_tokens"] / r["wall_s"]
        r["served_tokens_per_s"] = total / r["wall_s"]
        print(
            f"({key}) {r['name']:<44} {r['wall_s']:>8.1f} {r['prompt_tokens']:>8} {r['prefilled_tokens']:>8} "
            f"{r['cached_prompt_tokens']:>8} {r['completion_tokens']:>6} {r['completion_tokens_per_s']:>9.1f} "
            f"{r['served_tokens_per_s']:>9.1f} {r['mean_latency_s']:>6.2f}"
        )
    same = len({json.dumps(r["replies"]) for r in results.values()}) == 1
    print(f"\nall variants produced the same replies: {same}")
    first = next(iter(results))
    for key, r in results.items():
        pairs = [(x, y) for ex, ey in zip(results[first]["replies"], r["replies"]) for x, y in zip(ex, ey)]
        r["replies_equal_to_" + first] = sum(x == y for x, y in pairs)
        if key != first:
            print(f"({key}) replies equal to ({first})'s: {r['replies_equal_to_' + first]}/{len(pairs)}")
    print("prefill = prompt tokens actually run through the model (b: including left padding)")
    print("all tok/s = (prompt + generated tokens served) / wall time; lat s = mean request latency (b: per turn)")
    if "a" in results:
        for other in ("b", "c"):
            if other in results:
                print(f"speed-up of (a) over ({other}): {results[other]['wall_s'] / results['a']['wall_s']:.2f}x wall time")

    write(args, record_load_start, {
        "benchmark": "engine",
        "same_replies": same,
        "results": {k: {kk: vv for kk, vv in r.items() if kk != "replies"} for k, r in results.items()},
    })


def write(args: argparse.Namespace, load_start: tuple, record: dict) -> None:
    record = {
        **record,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_avg_at_start": load_start,
            "load_avg_at_end": os.getloadavg(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
