"""Batching and precision helpers of monitor.model.scorers, on the tiny built-in model (offline)."""

from __future__ import annotations

from monitor.model.runtime import Pretokenized, cpu_has_bf16, length_batches, pick_dtype, pretokenizer
from monitor.model.scorers import TINY, _load_one
from monitor.model.settings import ModelSettings


def test_length_batches_sort_by_length_cover_every_index_and_respect_the_budget():
    lengths = [5, 40, 7, 33, 6, 39, 8, 1, 12, 35]
    batches = length_batches(lengths, token_budget=80)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 80


class CountingTokenizer:
    def __init__(self, tok):
        self.tok = tok
        self.calls = 0
        self.pad_token_id = tok.pad_token_id

    def __call__(self, *a, **k):
        self.calls += 1
        return self.tok(*a, **k)


def test_pretokenized_texts_are_not_tokenized_again_and_score_the_same():
    clf = _load_one(TINY, "sentiment", ModelSettings(sentiment=TINY, emotion=None, device="cpu"))
    counting = CountingTokenizer(clf.tokenizer)
    clf.tokenizer = counting
    texts = ["a short one", "a much longer post about the metro and the weather today", "ok"]
    encode = pretokenizer(clf)
    pre, tokens = encode(texts)
    assert counting.calls == 1
    assert all(isinstance(t, Pretokenized) for t in pre) and pre == texts  # still the same strings
    assert tokens == [len(t.ids) for t in pre] and tokens[1] > tokens[0] >= tokens[2]
    from_pre = clf.probs(pre)
    assert counting.calls == 1  # the model pass did not tokenize
    plain = clf.probs(texts)
    assert counting.calls == 2
    assert [max(range(3), key=p.__getitem__) for p in from_pre] == [
        max(range(3), key=p.__getitem__) for p in plain
    ]


def test_a_scorer_without_a_known_tokenizer_gets_a_token_estimate():
    class Opaque:
        def score(self, texts, langs=None):
            return []

    texts, tokens = pretokenizer(Opaque())(["x" * 40, ""])
    assert texts == ["x" * 40, ""] and tokens == [12, 2]


def test_auto_precision_takes_bf16_on_a_cpu_only_when_it_computes_bf16_natively():
    assert cpu_has_bf16({"avx512f", "avx512bw"}) is False  # emulated by oneDNN: slower than fp32
    assert cpu_has_bf16(set()) is False
    import torch

    cpu = torch.device("cpu")
    assert pick_dtype("fp32", cpu) == "fp32" and pick_dtype("int8", cpu) == "int8"
    assert pick_dtype("auto", cpu) == ("bf16" if cpu_has_bf16() else "fp32")
    assert pick_dtype("auto", torch.device("cuda")) == "bf16"


def test_cpu_lanes_run_sub_batches_side_by_side_and_keep_input_order():
    import threading

    from monitor.model.runtime import SubBatches

    lengths = [n * 30 for n in (5, 40, 7, 33, 6, 39, 8, 1, 12, 35, 9, 30)]  # several lane-sized parts
    both_running = threading.Barrier(2, timeout=5)  # a sequential runner would time out here
    seen: list[str] = []

    def run(idx):
        if len(seen) < 2:
            seen.append(threading.current_thread().name)
            both_running.wait()
        return [lengths[i] * 10 for i in idx]

    lanes = SubBatches(token_budget=8192, lanes=2)
    out = lanes.map(run, lengths)
    assert out == [n * 10 for n in lengths]
    assert len(set(seen)) == 2 and all(name.startswith("lane") for name in seen)
    one = SubBatches(token_budget=8192, lanes=1).map(lambda idx: [lengths[i] * 10 for i in idx], lengths)
    assert one == out


def test_cpu_lanes_score_like_one_pass_on_a_real_model():
    from monitor.model.runtime import CPU_THREADS, cpu_lanes, pick_device

    texts = [f"post number {i} " + "about the metro " * (i % 9) for i in range(300)]  # several parts
    one = _load_one(TINY, "sentiment", ModelSettings(sentiment=TINY, emotion=None, device="cpu", cpu_lanes=1))
    two = _load_one(
        TINY, "sentiment", ModelSettings(sentiment=TINY, emotion=None, device="cpu", cpu_lanes=2, threads=2)
    )
    assert one.sub_batches.lanes == 1 and two.sub_batches.lanes == 2
    a, b = one.probs(texts), two.probs(texts)
    assert len(a) == len(b) == 300
    assert all(abs(x - y) < 1e-4 for pa, pb in zip(a, b, strict=True) for x, y in zip(pa, pb, strict=True))
    # one lane per thread by default on a CPU, never more lanes than threads, one on a GPU
    cpu = pick_device("cpu")
    assert cpu_lanes(ModelSettings(), cpu) == CPU_THREADS
    assert cpu_lanes(ModelSettings(threads=1, cpu_lanes=4), cpu) == 1
    import torch

    assert cpu_lanes(ModelSettings(cpu_lanes=4), torch.device("cuda")) == 1
    # passes on one CPU thread are kept small; a pass over several threads or a GPU takes the budget
    from monitor.model.runtime import LANE_TOKENS, pass_tokens

    # one lane over all of this machine's threads; two lanes of one thread each
    assert one.sub_batches.token_budget == (8192 if CPU_THREADS > 1 else LANE_TOKENS)
    assert two.sub_batches.token_budget == LANE_TOKENS
    assert pass_tokens(ModelSettings(threads=1), cpu) == LANE_TOKENS
    assert pass_tokens(ModelSettings(threads=1, token_budget=512), cpu) == 512
    assert pass_tokens(ModelSettings(threads=2, cpu_lanes=1), cpu) == 8192
    assert pass_tokens(ModelSettings(threads=1), torch.device("cuda")) == 8192
    # the worker reads a scorer's lanes (two batches in the model when it has several)
    from monitor.model.runtime import scorer_lanes
    from monitor.model.scorers import PairScorer

    assert scorer_lanes(PairScorer(two, None)) == 2 and scorer_lanes(PairScorer(one, None)) == 1
    assert scorer_lanes(object()) == 1
    # the default model's head behind a PairScorer (language routes): its lanes are the parent's
    from types import SimpleNamespace

    from monitor.model.runtime import SubBatches

    head = SimpleNamespace(parent=SimpleNamespace(sub_batches=SubBatches(LANE_TOKENS, 2)))
    assert scorer_lanes(SimpleNamespace(sentiment=head)) == 2


def test_the_direct_backend_tokenization_gives_the_wrappers_ids():
    from monitor.model.default import load_encoder
    from monitor.model.tokens import tokenize_ids as _tokenize

    texts = [
        "short",
        "a post about the metro and the weather today #commute @someone https://x.y/z",
        "long " * 300,
        "émojis 🙂 and ünïcode",
        "",
    ]
    _, minilm = load_encoder()
    tiny = _load_one(TINY, "sentiment", ModelSettings(sentiment=TINY, emotion=None, device="cpu")).tokenizer
    for tok in (minilm, tiny):
        assert tok.backend_tokenizer is not None
        want = tok(texts, truncation=True, max_length=64, padding=False)["input_ids"]
        assert _tokenize(tok, texts, 64) == want
        assert max(len(x) for x in want) == 64


def test_lane_parts_are_sorted_even_and_a_multiple_of_the_lanes():
    import random

    from monitor.model.runtime import LANE_TOKENS, SubBatches

    rng = random.Random(3)
    lanes = SubBatches(token_budget=8192, lanes=2)
    for n in (1, 3, 40, 300, 512):
        lengths = [rng.randint(8, 40) for _ in range(n)]
        parts = lanes.lane_parts(lengths)
        assert sorted(i for p in parts for i in p) == list(range(n))
        flat = [lengths[i] for p in parts for i in p]
        assert flat == sorted(flat)
        assert len(parts) % 2 == 0 or len(parts) == n
        tokens = [sum(lengths[i] for i in p) for p in parts]
        assert max(tokens) <= LANE_TOKENS + 40  # about the lane budget: one post over at most
        if n >= 40:
            assert max(tokens) - min(tokens) <= 2 * 40  # even: the lanes finish together
