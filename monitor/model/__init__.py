"""The model: torch, transformers, safetensors and py3langid are imported in this package and
nowhere else. Importing the package itself loads none of them: the seam (`base`) is pure, and
the runtime modules are imported by what needs them.

    base.py        Scorer, ModelOutput, Labels, to_labels: what the worker depends on (pure)
    runtime.py     devices, precisions, sub-batches and CPU lanes, tokenizing
    scorers.py     load_scorer: the default model or Hugging Face classifiers behind one Scorer
    default.py     the offline default model (MiniLM-L6 + LoRA, two heads on one encoder pass)
    labels.py      a hub model's labels mapped onto the taxonomy
    language.py    language detection for posts without a tag
    memory.py      allocator hygiene for a long-running worker
    training.py  datasets.py  evaluation.py  cli.py     `mood-monitor train` / `evaluate`
    weights/default/   the default model's adapter and heads
"""

from monitor.model.base import EncodeFn, LabelFn, Labels, ModelOutput, Scorer, estimate_tokens, to_labels

__all__ = ["EncodeFn", "LabelFn", "Labels", "ModelOutput", "Scorer", "estimate_tokens", "to_labels"]
