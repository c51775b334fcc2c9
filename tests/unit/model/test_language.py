from monitor.model.language import UNDETERMINED, detect, post_language


def test_detects_common_languages_of_short_posts():
    assert detect("I love the new PhoneX, it is wonderful and fast!") == "en"
    assert detect("Je déteste ce téléphone, il est vraiment nul.") == "fr"
    assert detect("Das ist wirklich ein schlechtes Telefon, leider.") == "de"
    assert detect("Este teléfono es increíble, me encanta mucho") == "es"


def test_handles_links_and_tags_are_not_language():
    assert detect("@bob #phonex https://example.com/a/b lol") == UNDETERMINED
    assert detect("ok") == UNDETERMINED
    assert detect("") == UNDETERMINED


def test_source_tag_wins_and_is_normalised():
    assert post_language("en-US", "Je déteste ce téléphone, il est vraiment nul.") == "en"
    assert post_language("pt_BR", "") == "pt"
    assert post_language("und", "Je déteste ce téléphone, il est vraiment nul.") == "fr"
    assert post_language("", "Je déteste ce téléphone, il est vraiment nul.") == "fr"
