from synthesis.media.text import MAX_SEGMENT_CHARS, split_text


def test_short_sentences_are_merged_into_one_segment():
    assert split_text("Hello there. How are you? Fine!") == ["Hello there. How are you? Fine!"]


def test_sentences_are_split_where_they_would_not_fit_together():
    assert split_text("Hello there. How are you?", max_chars=15) == ["Hello there.", "How are you?"]


def test_a_long_sentence_is_split_at_clauses_then_words_and_every_segment_fits():
    sentence = ", ".join(["this clause has some words in it"] * 20) + "."
    segments = split_text(sentence)

    assert len(segments) > 1
    assert all(len(s) <= MAX_SEGMENT_CHARS for s in segments)
    assert " ".join(segments).replace(" ,", ",") == sentence


def test_text_without_punctuation_or_spaces_is_still_split_to_fit():
    segments = split_text("x" * 450)

    assert [len(s) for s in segments] == [200, 200, 50]


def test_non_latin_full_stops_end_sentences():
    assert split_text("这是第一句。这是第二句！", max_chars=6) == ["这是第一句。", "这是第二句！"]
    assert split_text("यह पहला वाक्य है। यह दूसरा है।", max_chars=18) == ["यह पहला वाक्य है।", "यह दूसरा है।"]


def test_bark_cues_are_kept_whole():
    segments = split_text("Well [clears throat] that is it. Then [laughs] ok.", max_chars=22)

    assert "[clears throat]" in " ".join(segments)
    assert all(s.count("[") == s.count("]") for s in segments)


def test_blank_text_has_no_segments():
    assert split_text(" \n\t ") == []


def test_each_line_starts_a_new_segment_so_dialogue_lines_stay_apart():
    assert split_text("Did you hear that?\nI did.\n\n  Only the cat.  ") == [
        "Did you hear that?",
        "I did.",
        "Only the cat.",
    ]
