import pytest

from monitor.model.evaluation import expected_calibration_error, score


def test_single_label_figures_by_hand():
    gold = [("negative",), ("negative",), ("neutral",), ("positive",)]
    top = ["negative", "neutral", "neutral", "negative"]
    r = score("sentiment", gold, [[t] for t in top], top, [0.9, 0.6, 0.8, 0.7])
    assert r.per_class["negative"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert r.per_class["neutral"]["precision"] == 0.5 and r.per_class["neutral"]["recall"] == 1.0
    assert r.per_class["positive"]["recall"] == 0.0
    assert r.macro_recall == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert r.accuracy == 0.5
    assert r.confusion == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    js = r.as_json()
    assert {"macro_recall", "macro_f1", "accuracy", "ece", "per_class", "confusion"} <= set(js)


def test_multi_label_sets_count_every_label():
    gold = [("anger", "disgust"), ("joy",)]
    sets = [["anger"], ["joy", "surprise"]]
    r = score("emotion", gold, sets, ["anger", "joy"], [0.7, 0.6])
    assert r.multi_label
    assert r.per_class["disgust"]["recall"] == 0.0 and r.per_class["disgust"]["support"] == 1
    assert r.per_class["surprise"]["precision"] == 0.0
    assert r.per_class["anger"]["f1"] == 1.0
    assert r.accuracy == 0.0  # exact-set match


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    assert expected_calibration_error([1.0, 1.0], [True, True]) == pytest.approx(0.0)
    assert expected_calibration_error([0.99] * 10, [False] * 10) == pytest.approx(0.99)


def test_default_model_counts_uncovered_languages_as_unsupported():
    from monitor.model.scorers import load_scorer
    from monitor.model.settings import ModelSettings

    sc = load_scorer(ModelSettings())
    outs = sc.score(
        ["I love this phone so much", "Je déteste vraiment ce téléphone", "meh"], ["en", "fr", "und"]
    )
    assert outs[0] is not None and outs[2] is not None
    assert outs[1] is None  # French is not forced through the English model


def test_both_heads_cost_one_encoder_pass_per_batch():
    from monitor.model.scorers import load_scorer
    from monitor.model.settings import ModelSettings

    sc = load_scorer(ModelSettings())
    rows = []  # posts per encoder call (a CPU splits a batch over its lanes)
    sc.model.encoder.register_forward_hook(
        lambda _m, _a, kw, _o: rows.append(len(kw["input_ids"])), with_kwargs=True
    )
    outs = sc.score([f"post number {i} about the new phone" for i in range(32)], ["en"] * 32)
    assert all(o.sentiment is not None and o.emotion is not None for o in outs)
    assert sum(rows) == 32  # every post through the encoder once, for both heads
    assert len(rows) == sc.sub_batches.lanes
