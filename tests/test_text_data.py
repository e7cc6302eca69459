"""Text data: files, folders, pairs and built-in names; clear errors; splits; prediction input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from toolkit.data import (
    BUILTIN_TEXT_SETS,
    TextData,
    TextSplits,
    load_text,
    prepare_texts,
    resolve_text_data,
    text_splits,
)
from toolkit.data.text import IMDB_URL, UCI_SENTIMENT_URL, sort_labels
from toolkit.errors import DataError

SENTIMENT = SHARED_DATA / "sentiment_sentences"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


@pytest.fixture(scope="module")
def sentiment():
    if not (SENTIMENT / "amazon_cells_labelled.txt").is_file():
        pytest.skip(f"{SENTIMENT} is missing")
    return load_text(SENTIMENT)


# --------------------------------------------------------------------------- the shared data set


def test_sentiment_folder_loads_as_one_data_set(sentiment):
    assert len(sentiment) == 2000 and sentiment.class_names == ["0", "1"]
    assert sentiment.y.dtype == np.int64 and np.bincount(sentiment.y).tolist() == [1000, 1000]
    assert [Path(f).name for f in sentiment.meta["files"]] == ["amazon_cells_labelled.txt", "yelp_labelled.txt"]
    assert sentiment.meta["ignored_files"] == ["README.md"]
    assert sentiment.texts[0].startswith("So there is no way for me to plug it in here")
    assert all(isinstance(t, str) and t.strip() for t in sentiment.texts)


def test_sentiment_split_is_stratified_1600_400(sentiment):
    splits = text_splits(sentiment, test_size=0.2, seed=42)
    assert isinstance(splits, TextSplits) and splits.class_names == ["0", "1"]
    assert (len(splits.train), len(splits.test)) == (1600, 400)
    assert np.bincount(splits.test.y).tolist() == [200, 200]
    assert splits.spec["source"] == str(SENTIMENT.resolve())
    assert {k: splits.spec[k] for k in ("test_size", "seed", "n_train", "n_test")} == {
        "test_size": 0.2, "seed": 42, "n_train": 1600, "n_test": 400}
    again = text_splits(load_text(splits.spec["source"]), splits.spec["test_size"], splits.spec["seed"])
    assert again.test.texts == splits.test.texts  # the spec remakes the split
    assert sorted(splits.train.texts + splits.test.texts) == sorted(sentiment.texts)  # a partition
    assert resolve_text_data(splits, role="test") is splits.test
    assert resolve_text_data(splits, role="train") is splits.train


# --------------------------------------------------------------------------- .txt files and folders


def test_txt_reads_sentences_verbatim(tmp_path):
    path = write(tmp_path / "s.txt", 'He said "great" and left\t1\r\n  Awful  \t0\nA\ttab inside\t1\n\n')
    data = load_text(path)
    assert data.texts == ['He said "great" and left', "  Awful  ", "A\ttab inside"]
    assert data.y.tolist() == [1, 0, 1] and data.class_names == ["0", "1"]


def test_txt_with_a_utf8_bom_and_non_ascii(tmp_path):
    data = load_text(write(tmp_path / "s.txt", "\ufeffCafé très bon\tpos\nNul\tneg\n"))
    assert data.texts == ["Café très bon", "Nul"] and data.class_names == ["neg", "pos"]


def test_non_utf8_bytes_name_the_file_and_line(tmp_path):
    path = write(tmp_path / "bad.txt", b"fine\t1\nalso fine\t0\ncaf\xe9 au lait\t1\n")
    with pytest.raises(DataError, match=r"bad\.txt.*line 3 is not valid UTF-8.*0xe9.*Re-save the file as UTF-8"):
        load_text(path)
    csv = write(tmp_path / "bad.csv", b"text,label\nok,1\n\xff\xfe,0\n")
    with pytest.raises(DataError, match=r"bad\.csv.*line 3 is not valid UTF-8"):
        load_text(csv)


def test_txt_line_without_a_tab(tmp_path):
    path = write(tmp_path / "s.txt", "good\t1\nno tab here 0\n")
    with pytest.raises(DataError, match=r"s\.txt'?, line 2: expected 'sentence<TAB>label'.*without a TAB"):
        load_text(path)


def test_empty_texts_and_missing_labels_are_errors_naming_lines(tmp_path):
    lines = ["good\t1", "\t0", "bad\t0", "   \t1"] + [f"x{i}\t1" for i in range(3)]
    with pytest.raises(DataError, match=r"2 line\(s\) have an empty text: line 2, 4"):
        load_text(write(tmp_path / "e.txt", "\n".join(lines)))
    many = "\n".join(["ok\t1", "ok\t0"] + ["\t1"] * 8)
    with pytest.raises(DataError, match=r"8 line\(s\).*line 3, 4, 5, 6, 7 and 3 more"):
        load_text(write(tmp_path / "many.txt", many))
    with pytest.raises(DataError, match=r"no label after the TAB: line 2"):
        load_text(write(tmp_path / "l.txt", "good\t1\nbad\t \n"))


def test_empty_unsupported_and_missing_files(tmp_path):
    with pytest.raises(DataError, match=r"empty\.txt' is empty"):
        load_text(write(tmp_path / "empty.txt", "\n \n"))
    with pytest.raises(DataError, match=r"Unsupported text file .*data\.json.*\.csv or \.tsv"):
        load_text(write(tmp_path / "data.json", "{}"))
    with pytest.raises(DataError, match=r"Text data not found: .*nope\.csv.*uci_sentiment"):
        load_text(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"Expected text data as a file or folder path"):
        load_text(42)


def test_only_one_class_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"only one class \('1' for all 2 texts\).*at least 2 classes"):
        load_text(write(tmp_path / "one.txt", "good\t1\ngreat\t1\n"))


def test_long_texts_are_cut_with_one_warning(tmp_path):
    long = "word " * 3000  # 15,000 characters
    path = write(tmp_path / "long.txt", f"{long}\t1\n{long}\t0\nshort\t1\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_text(path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "2 text(s)" in messages[0] and "10,000 characters" in messages[0]
    assert [len(t) for t in data.texts] == [10_000, 10_000, 5] and data.meta["n_truncated"] == 2
    with pytest.warns(UserWarning, match="cut to their first 100 characters"):
        assert len(load_text(path, max_chars=100).texts[0]) == 100


def test_folder_of_txt_files_is_one_data_set(tmp_path):
    folder = tmp_path / "corpus"
    write(folder / "b.txt", "bad\t0\nawful\t0\n")
    write(folder / "a.txt", "good\t1\n")
    write(folder / "c.tsv", "sentence\tlabel\nfine\t1\n")
    write(folder / "readme.txt", "This folder holds sentences.\n")
    write(folder / "notes.md", "# notes\n")
    write(folder / ".hidden.txt", "junk\n")
    data = load_text(folder)
    assert data.texts == ["good", "bad", "awful", "fine"] and data.y.tolist() == [1, 0, 0, 1]
    assert [Path(f).name for f in data.meta["files"]] == ["a.txt", "b.txt", "c.tsv"]
    assert sorted(data.meta["ignored_files"]) == ["notes.md", "readme.txt"]
    with pytest.raises(DataError, match=r"has no \.txt/\.tsv data files"):
        load_text(write(tmp_path / "empty" / "x.md", "x").parent)


def test_folder_of_class_subfolders_and_the_aclimdb_layout(tmp_path):
    root = tmp_path / "aclImdb"
    for part in ("train", "test"):
        write(root / part / "pos" / "0_9.txt", f"A great film ({part}).<br />Loved it.")
        write(root / part / "neg" / "1_2.txt", f"Dull ({part}).")
        write(root / part / "neg" / "2_1.txt", "Bad.")
    write(root / "train" / "unsup" / "5_0.txt", "No label.")
    data = load_text(root)
    assert data.class_names == ["neg", "pos"] and len(data) == 6
    assert data.meta["parts"] == {"train": 3, "test": 3}
    assert data.texts[0] == "Dull (train)." and data.texts[2] == "A great film (train).<br />Loved it."
    flat = tmp_path / "flat"
    write(flat / "ham" / "a.txt", "hello")
    write(flat / "spam" / "b.txt", "WIN NOW")
    assert load_text(flat).class_names == ["ham", "spam"]


# --------------------------------------------------------------------------- CSV and TSV


def test_csv_with_default_columns_quotes_and_commas(tmp_path):
    path = write(tmp_path / "r.csv", 'Review,Sentiment,id\n"Good, really ""good""",positive,1\nBad,negative,2\n')
    data = load_text(path)
    assert data.texts == ['Good, really "good"', "Bad"] and data.class_names == ["negative", "positive"]
    assert data.meta["text_column"] == "Review" and data.meta["label_column"] == "Sentiment"


def test_csv_and_tsv_with_custom_columns(tmp_path):
    csv = write(tmp_path / "c.csv", "body,verdict\nlovely,yes\nNA,no\nnull,no\n")
    data = load_text(csv, text_column="body", label_column="verdict")
    assert data.texts == ["lovely", "NA", "null"]  # "NA"/"null" are texts, not missing values
    tsv = write(tmp_path / "t.tsv", 'message\tis_spam\nWin "cash", now\t1\nhi mum\t0\n')
    data = load_text(tsv, text_column="message", label_column="is_spam")
    assert data.texts == ['Win "cash", now', "hi mum"] and data.y.tolist() == [1, 0]


def test_missing_columns_name_the_column_and_the_flag(tmp_path):
    path = write(tmp_path / "c.csv", "body,verdict\nlovely,yes\nugly,no\n")
    asked = r"no text column 'message'\. Available columns: \['body', 'verdict'\].*--text-column"
    with pytest.raises(DataError, match=asked):
        load_text(path, text_column="message", label_column="verdict")
    with pytest.raises(DataError, match=r"no label column 'y'.*\['body', 'verdict'\].*--label-column"):
        load_text(path, text_column="body", label_column="y")
    with pytest.raises(DataError, match=r"no text column: looked for \['text', 'sentence'.*--text-column"):
        load_text(path)
    headless = write(tmp_path / "h.tsv", "great phone\t1\nbroke in a day\t0\n")
    with pytest.raises(DataError, match=r"needs a header row.*give the file a \.txt extension"):
        load_text(headless)


def test_csv_nan_text_empty_text_and_missing_label_name_rows(tmp_path):
    with pytest.raises(DataError, match=r"1 row\(s\) have no text \(an empty or NaN cell in column 'text'\): row 2"):
        load_text(write(tmp_path / "a.csv", "text,label\ngood,1\n,0\nbad,0\n"))
    with pytest.raises(DataError, match=r"whitespace-only text in column 'text': row 1"):
        load_text(write(tmp_path / "b.csv", 'text,label\n"   ",1\nbad,0\n'))
    with pytest.raises(DataError, match=r"no label in column 'label': row 3"):
        load_text(write(tmp_path / "c.csv", "text,label\ngood,1\nbad,0\nmeh,\n"))
    with pytest.raises(DataError, match=r"has a header but no rows"):
        load_text(write(tmp_path / "d.csv", "text,label\n"))
    with pytest.raises(DataError, match=r"could not be parsed"):
        load_text(write(tmp_path / "e.csv", 'text,label\n"unclosed,1\n'))


# --------------------------------------------------------------------------- labels and pairs


def test_pairs_with_int_and_string_labels():
    data = load_text((["good", "bad", "ok"], [1, 0, np.int64(1)]))
    assert data.class_names == ["0", "1"] and data.y.tolist() == [1, 0, 1] and data.meta["source"] == "pairs"
    data = load_text((np.array(["a", "b"]), np.array(["spam", "ham"])))
    assert data.class_names == ["ham", "spam"] and data.y.tolist() == [1, 0]


def test_class_names_sort_numbers_numerically():
    assert sort_labels(["10", "2", "b", "A", "1"]) == ["1", "2", "10", "A", "b"]
    data = load_text((["a", "b", "c"], ["10", "2", "1"]))
    assert data.class_names == ["1", "2", "10"] and data.y.tolist() == [2, 1, 0]


def test_given_class_names_and_label_names():
    data = load_text((["a", "b"], [0, 1]), label_names={"0": "negative", 1: "positive"})
    assert data.class_names == ["negative", "positive"]
    data = load_text((["a", "b"], ["1", "0"]), label_names=["neg", "pos"], class_names=["pos", "neg"])
    assert data.class_names == ["pos", "neg"] and data.y.tolist() == [0, 1]
    with pytest.raises(DataError, match=r"not among the classes \['a', 'b'\]: \['c'\]"):
        load_text((["x", "y"], ["a", "c"]), class_names=["a", "b"])
    with pytest.raises(DataError, match=r"label_names has no name for the labels \['2'\]"):
        load_text((["x", "y"], [0, 2]), label_names={0: "neg"})
    with pytest.raises(DataError, match=r"labels must be 0\.\.1.*'2'"):
        load_text((["x", "y"], [0, 2]), label_names=["neg", "pos"])


def test_bad_pairs():
    with pytest.raises(DataError, match="2 texts and 1 labels"):
        load_text((["a", "b"], [1]))
    with pytest.raises(DataError, match=r"other types at index 1 \(int\)"):
        load_text((["a", 5], [0, 1]))
    with pytest.raises(DataError, match=r"empty or whitespace-only: index 1"):
        load_text((["a", " "], [0, 1]))
    with pytest.raises(DataError, match=r"no label: index 0"):
        load_text((["a", "b"], [None, 1]))
    with pytest.raises(DataError, match="not one-hot"):
        load_text((["a", "b"], np.eye(2)))
    with pytest.raises(DataError, match="Received a string"):
        load_text(("abc", "ab"))


def test_resolve_text_data_reindexes_to_the_model_classes(tmp_path):
    data = load_text((["good", "bad", "fine"], ["pos", "neg", "pos"]))
    again = resolve_text_data(data, class_names=["pos", "neg"])
    assert again.class_names == ["pos", "neg"] and again.y.tolist() == [0, 1, 0]
    assert resolve_text_data((["good"], ["pos"]), role="test", class_names=["neg", "pos"]).y.tolist() == [1]
    with pytest.raises(DataError, match=r"classes the model does not know: \['neg'\]"):
        resolve_text_data(data, class_names=["pos", "meh"])
    path = write(tmp_path / "s.txt", "good\t1\nbad\t0\n")
    assert resolve_text_data(str(path), class_names=["1", "0"]).y.tolist() == [0, 1]
    with pytest.raises(ValueError, match="role 'train' or 'test'"):
        resolve_text_data(data, role="validation")


# --------------------------------------------------------------------------- built-in sets offline


def test_builtin_sets_offline_name_the_url_and_the_local_fallback(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def offline(*args, **kwargs):
        raise Exception(f"URL fetch failure on {kwargs.get('origin')}: None -- [Errno -3] Temporary failure")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    assert set(BUILTIN_TEXT_SETS) == {"uci_sentiment", "imdb"}
    for name, url in (("uci_sentiment", UCI_SENTIMENT_URL), ("imdb", IMDB_URL)):
        with pytest.raises(DataError) as info:
            load_text(name)
        message = str(info.value)
        assert url in message and "offline" in message and "local copy" in message


def test_builtin_uci_sentiment_reads_the_extracted_archive(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    extracted = tmp_path / "sentiment_labelled_sentences_extracted"
    inner = extracted / "sentiment labelled sentences"
    write(inner / "amazon_cells_labelled.txt", "Good case.\t1\nBroke.\t0\n")
    write(inner / "imdb_labelled.txt", "A very, very slow film.  \t0\n")
    write(inner / "yelp_labelled.txt", "Wow... Loved this place.\t1\n")
    write(inner / "readme.txt", "Sentiment labelled sentences.\n")
    write(extracted / "__MACOSX" / "sentiment labelled sentences" / "._yelp_labelled.txt", b"\x00\x05\x16\x07")
    calls = []
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: calls.append(k) or str(extracted))
    data = load_text("uci_sentiment")
    assert calls and calls[0]["origin"] == UCI_SENTIMENT_URL and calls[0]["extract"] is True
    assert len(data) == 4 and data.meta["source"] == "uci_sentiment"
    assert [Path(f).name for f in data.meta["files"]] == [
        "amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt"]
    assert data.texts[2] == "A very, very slow film.  "


# --------------------------------------------------------------------------- prediction-time input


def test_prepare_texts_accepts_strings_bytes_lists_and_arrays():
    assert prepare_texts("Great phone") == ["Great phone"]
    assert prepare_texts("Café".encode("utf-8")) == ["Café"]
    assert prepare_texts(["a", b"b", np.str_("c")]) == ["a", "b", "c"]
    assert prepare_texts(np.array(["x", "y"])) == ["x", "y"]
    assert prepare_texts(("tab\there\nnewline",)) == ["tab\there\nnewline"]


def test_prepare_texts_rejects_bad_input():
    with pytest.raises(DataError, match="Enter some text"):
        prepare_texts("   \n")
    with pytest.raises(DataError, match=r"Enter some text.*text 1 is empty"):
        prepare_texts(["ok", ""])
    with pytest.raises(DataError, match=r"not valid UTF-8"):
        prepare_texts(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match=r"text 1 to be a string\. Received int"):
        prepare_texts(["ok", 3])
    with pytest.raises(DataError, match=r"Received int"):
        prepare_texts(3)
    with pytest.raises(DataError, match="empty list"):
        prepare_texts([])
    with pytest.raises(DataError, match="looks like binary data, not text"):
        prepare_texts("\x00\x01\xff\x02\x03abc")
    with pytest.raises(DataError, match="looks like binary data"):
        prepare_texts("\x01\x02\x03\x04\x05ab")
    with pytest.raises(DataError, match=r"binary data, not text \(it contains 1 NUL"):
        prepare_texts("a long and otherwise normal sentence\x00")
    assert prepare_texts("line one\r\n\tline two\x0c") == ["line one\r\n\tline two\x0c"]  # whitespace is fine
    assert prepare_texts("one \x07 bell in a sentence") == ["one \x07 bell in a sentence"]


def test_prepare_texts_cuts_long_texts_with_a_warning():
    with pytest.warns(UserWarning, match=r"1 text\(s\) in the input are longer than 10,000"):
        out = prepare_texts("a" * 12_000)
    assert len(out[0]) == 10_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepare_texts("short") == ["short"]


def test_text_data_subset():
    data = TextData(["a", "b", "c"], np.array([0, 1, 0]), ["x", "y"], {"source": "s"})
    part = data.subset([2, 0])
    assert part.texts == ["c", "a"] and part.y.tolist() == [0, 0] and len(part) == 2 and part.meta == {"source": "s"}
