"""Helpers of `bench/gpu.sh`: a RoBERTa-base-sized classifier built from a config (random
weights, no hub), and the report that turns `bench/pipeline.py`'s figures into the share of the
device's bf16 peak.

    .venv/bin/python bench/gpu_models.py build OUT_DIR [--small]
    .venv/bin/python bench/gpu_models.py report RESULT.json [RESULT.json ...]

``build`` writes a RobertaForSequenceClassification of RoBERTa-base's shape (768 wide, 12 layers,
3,072 FFN, 125M parameters with its embeddings) with the labels negative/neutral/positive and
the packaged MiniLM's tokenizer (a WordPiece vocabulary of 30,522: the embedding table differs
from RoBERTa's 50,265, the FLOPs per token do not). ``--small`` builds a 2-layer, 128-wide one
for a CPU proof run. ``report`` prints, per result, posts/s forward and end to end, FLOPs per
post (2 x the non-embedding multiply-adds per real token, attention included, times the mean
real tokens a post), the achieved TFLOP/s and their share of the device's dense bf16 peak, the
forward pass's peak GPU memory and the host path's CPU per post.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# dense bf16 tensor peaks (no sparsity), FLOP/s, by a substring of torch.cuda.get_device_name()
BF16_PEAK = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "RTX 4090": 165e12,
}


def build(out: Path, small: bool) -> None:
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification

    from monitor.model.runtime import minilm_dir

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    shape = (
        {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512}
        if small
        else {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
        }
    )
    cfg = RobertaConfig(
        vocab_size=tok.vocab_size,
        max_position_embeddings=514,
        type_vocab_size=2,
        pad_token_id=tok.pad_token_id,
        num_labels=3,
        id2label={0: "negative", 1: "neutral", 2: "positive"},
        label2id={"negative": 0, "neutral": 1, "positive": 2},
        **shape,
    )
    model = RobertaForSequenceClassification(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"built {out}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")


def flops_per_token(cfg: Any, seq: float) -> float:
    """Forward FLOPs per token of an encoder (multiply-add = 2): per layer 8 d^2 (QKV and
    output projections) + 4 d d_ff (FFN) + 4 L d (QK^T and AV at sequence length L)."""
    d, ff, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    return float(layers * (8 * d * d + 4 * d * ff + 4 * seq * d))


def model_config(model: str) -> Any:
    from transformers import AutoConfig

    if model in ("default", "null"):
        from monitor.model.runtime import minilm_dir

        return AutoConfig.from_pretrained(str(minilm_dir()))
    return AutoConfig.from_pretrained(model)


def mean_tokens(model: str, n: int = 2000) -> float:
    from transformers import AutoTokenizer

    from devstack.synthetic import stream
    from monitor.model.runtime import minilm_dir

    path = str(minilm_dir()) if model in ("default", "null") else model
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok([str(p["text"]) for p in stream(n, id_prefix="b")], truncation=True, max_length=128)[
        "input_ids"
    ]
    return sum(map(len, ids)) / len(ids)


def report(paths: list[str]) -> None:
    for path in paths:
        f = orjson.loads(Path(path).read_text().strip().splitlines()[-1])
        model = f.get("model_arg", f["model"])
        cfg = model_config(model)
        seq = mean_tokens(model)
        per_post = flops_per_token(cfg, seq) * seq
        peak = next((v for k, v in BF16_PEAK.items() if k in f.get("device_name", "")), None)
        print(f"== {path}: {f['model']} on {f.get('device_name', f['device'])} ({f['dtype']})")
        for label, rate in (("forward", f["forward_posts_per_s"]), ("end to end", f["e2e_posts_per_s"])):
            tflops = per_post * rate / 1e12
            share = f"{tflops * 1e12 / peak:.2%} of the bf16 peak" if peak else "peak unknown for this device"
            print(f"  {label:<11} {rate:>10.1f} posts/s  {tflops:8.2f} TFLOP/s  {share}")
        print(
            f"  FLOPs per post {per_post / 1e9:.2f} GFLOP ({seq:.1f} tokens a post, "
            f"{cfg.num_hidden_layers} layers)"
        )
        print(f"  forward pass peak GPU memory {f.get('gpu_peak_memory_mb', 'n/a')} MB")
        # on a GPU the forward pass runs on the device: the worker's CPU is its host path
        cpu = f.get("e2e_cpu_us_per_post")
        print(f"  CPU us per post, end to end, per process (worker: host path + model launches) {cpu}")


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "build":
        build(Path(argv[1]), "--small" in argv[2:])
        return 0
    if len(argv) >= 2 and argv[0] == "report":
        report(argv[1:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
