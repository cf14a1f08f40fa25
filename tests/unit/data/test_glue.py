import csv

import pytest
from datasets import ClassLabel

from tests.helpers import GLUE_DIR, HUB_FEATURES, write_tsv
from textcls.data.glue import GLUE_TASKS, get_glue_task, load_glue_dir
from textcls.errors import UserError

# As in MRPC dev: a field opening with an unbalanced double quote. With csv's default quoting the field would run
# on through tabs and newlines, swallowing the rows after it.
QUOTED = '" The foodservice pie business does not fit our strategy .'


def assert_hub_schema(data, task_name, splits):
    assert list(data) == splits
    for split in splits:
        assert data[split].features == HUB_FEATURES[task_name]
        assert data[split].column_names == list(HUB_FEATURES[task_name])


def test_task_table():
    assert list(GLUE_TASKS) == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    for name, task in GLUE_TASKS.items():
        assert task.name == name
        text_columns = list(HUB_FEATURES[name])[:-2]
        assert [column for column in (task.text_column, task.text_pair_column) if column] == text_columns
        expected_label = HUB_FEATURES[name]["label"]
        assert task.label_names == (tuple(expected_label.names) if isinstance(expected_label, ClassLabel) else None)
        assert task.is_regression == (name == "stsb")
        assert len(task.submission_files) == len(task.test_splits)
    mnli = GLUE_TASKS["mnli"]
    assert mnli.eval_splits == ("validation_matched", "validation_mismatched")
    assert mnli.test_splits == ("test_matched", "test_mismatched")
    assert mnli.submission_files == ("MNLI-m.tsv", "MNLI-mm.tsv")
    assert GLUE_TASKS["sst2"].submission_files == ("SST-2.tsv",)
    assert GLUE_TASKS["stsb"].dir_name == "STS-B"


@pytest.mark.parametrize(
    ("spelling", "name"), [("CoLA", "cola"), ("SST-2", "sst2"), ("sst2", "sst2"), ("sts-b", "stsb"), ("MNLI", "mnli")]
)
def test_get_glue_task_spellings(spelling, name):
    assert get_glue_task(spelling) is GLUE_TASKS[name]


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(UserError, match="squad.*cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli"):
        get_glue_task("squad")
    with pytest.raises(UserError, match="squad"):
        load_glue_dir("squad", ".")


def test_cola_headerless_train_dev(tmp_path):
    write_tsv(
        tmp_path,
        "train.tsv",
        [["gj04", "1", "", "Good one ."], ["gj04", "0", "*", QUOTED], ["cj99", "1", "", "Next ."]],
    )
    write_tsv(tmp_path, "dev.tsv", [["gj04", "0", "*", "Bad one ."]])
    write_tsv(tmp_path, "test.tsv", [["index", "sentence"], ["0", "Bill whistled ."], ["1", "A car honked ."]])
    data = load_glue_dir("cola", str(tmp_path))
    assert_hub_schema(data, "cola", ["train", "validation", "test"])
    assert data["train"]["sentence"] == ["Good one .", QUOTED, "Next ."]
    assert data["train"]["label"] == [1, 0, 1]
    assert data["train"].features["label"].int2str(1) == "acceptable"
    assert data["train"]["idx"] == [0, 1, 2]
    assert data["validation"]["label"] == [0]
    assert data["test"]["label"] == [-1, -1]
    assert data["test"]["idx"] == [0, 1]


def test_sst2_keeps_text_exactly(tmp_path):
    write_tsv(tmp_path, "train.tsv", [["sentence", "label"], ["hide new secretions ", "0"], [QUOTED, "1"]])
    write_tsv(tmp_path, "test.tsv", [["index", "sentence"], ["0", "uneasy mishmash ."]])
    data = load_glue_dir("sst-2", str(tmp_path))
    assert_hub_schema(data, "sst2", ["train", "test"])
    assert data["train"]["sentence"] == ["hide new secretions ", QUOTED]
    assert data["train"]["label"] == [0, 1]
    assert data["test"]["label"] == [-1]


def test_mrpc_with_bom(tmp_path):
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    rows = [
        ["1", "702876", "702977", QUOTED, "Referring to him ."],
        ["0", "2108705", "2108831", "Yucaipa .", "Bought ."],
    ]
    write_tsv(tmp_path, "train.tsv", [header, *rows], bom=True)
    write_tsv(tmp_path, "dev.tsv", [header, rows[1]], bom=True)
    test_header = ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    write_tsv(tmp_path, "test.tsv", [test_header, ["0", "1089874", "1089925", "PCCW .", "Current ."]])
    data = load_glue_dir("MRPC", str(tmp_path))
    assert_hub_schema(data, "mrpc", ["train", "validation", "test"])
    assert data["train"]["sentence1"] == [QUOTED, "Yucaipa ."]
    assert data["train"]["sentence2"] == ["Referring to him .", "Bought ."]
    assert data["train"]["label"] == [1, 0]
    assert data["train"].features["label"].int2str(1) == "equivalent"
    assert data["validation"]["idx"] == [0]
    assert data["test"]["label"] == [-1]


STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]


def stsb_row(index, sentence1, sentence2, *score):
    return [str(index), "main-captions", "MSRvid", "2012test", "0001", "none", "none", sentence1, sentence2, *score]


def test_stsb_ten_columns_and_float_scores(tmp_path):
    write_tsv(
        tmp_path,
        "train.tsv",
        [
            STSB_HEADER + ["score"],
            stsb_row(0, "A plane .", "An air plane .", "5.000"),
            stsb_row(1, QUOTED, "B", "0.8"),
        ],
    )
    write_tsv(tmp_path, "dev.tsv", [STSB_HEADER + ["score"], stsb_row(0, "C", "D", "0")])
    write_tsv(tmp_path, "test.tsv", [STSB_HEADER, stsb_row(0, "A girl .", "A girl .")])
    data = load_glue_dir("sts-b", str(tmp_path))
    assert_hub_schema(data, "stsb", ["train", "validation", "test"])
    assert data["train"]["sentence1"] == ["A plane .", QUOTED]
    assert data["train"]["label"] == pytest.approx([5.0, 0.8])
    assert data["validation"]["label"] == [0.0]
    assert data["test"]["label"] == [-1.0]


@pytest.mark.parametrize(
    ("task_name", "text_columns"), [("rte", ("sentence1", "sentence2")), ("qnli", ("question", "sentence"))]
)
def test_string_labels(tmp_path, task_name, text_columns):
    header = ["index", *text_columns]
    write_tsv(
        tmp_path,
        "dev.tsv",
        [header + ["label"], ["0", QUOTED, "B", "not_entailment"], ["1", "C", "D", "entailment"]],
    )
    write_tsv(tmp_path, "test.tsv", [header, ["0", "E", "F"]])
    data = load_glue_dir(task_name, str(tmp_path))
    assert_hub_schema(data, task_name, ["validation", "test"])
    assert data["validation"][text_columns[0]] == [QUOTED, "C"]
    assert data["validation"]["label"] == [1, 0]
    assert data["validation"]["idx"] == [0, 1]
    assert data["test"]["label"] == [-1]


def test_wnli_int_labels_map_to_its_own_order(tmp_path):
    header = ["index", "sentence1", "sentence2"]
    write_tsv(tmp_path, "train.tsv", [header + ["label"], ["0", "A", "B", "1"], ["1", QUOTED, "D", "0"]])
    write_tsv(tmp_path, "test.tsv", [header, ["0", "E", "F"]])
    data = load_glue_dir("wnli", str(tmp_path))
    assert_hub_schema(data, "wnli", ["train", "test"])
    label = data["train"].features["label"]
    assert [label.int2str(i) for i in data["train"]["label"]] == ["entailment", "not_entailment"]
    assert data["train"]["sentence1"] == ["A", QUOTED]


MNLI_HEADER = ["index", "promptID", "pairID", "genre"] + [
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
]


def mnli_row(index, premise, hypothesis):
    return [
        str(index),
        "31193",
        "31193n",
        "government",
        "( ( x ) )",
        "( y )",
        "(ROOT x)",
        "(ROOT y)",
        premise,
        hypothesis,
    ]


def test_mnli_five_files_gold_label_last(tmp_path):
    # label1 deliberately disagrees with gold_label: only the last column is the label.
    write_tsv(
        tmp_path,
        "train.tsv",
        [
            MNLI_HEADER + ["label1", "gold_label"],
            mnli_row(0, "Conceptually cream .", "Product .") + ["contradiction", "neutral"],
            mnli_row(1, QUOTED, "You lose .") + ["neutral", "entailment"],
        ],
    )
    dev_header = MNLI_HEADER + ["label1", "label2", "label3", "label4", "label5", "gold_label"]
    votes = ["neutral", "contradiction", "contradiction", "contradiction", "contradiction"]
    write_tsv(tmp_path, "dev_matched.tsv", [dev_header, mnli_row(0, "P", "H") + votes + ["contradiction"]])
    write_tsv(
        tmp_path,
        "dev_mismatched.tsv",
        [dev_header, mnli_row(0, "P", "H") + votes + ["entailment"], mnli_row(1, "Q", "I") + votes + ["neutral"]],
    )
    write_tsv(tmp_path, "test_matched.tsv", [MNLI_HEADER, mnli_row(0, "P", "H")])
    write_tsv(tmp_path, "test_mismatched.tsv", [MNLI_HEADER, mnli_row(0, "P", "H"), mnli_row(1, "Q", "I")])
    write_tsv(tmp_path, "dev.tsv", [["not", "an", "mnli", "file"]])  # MNLI has no dev.tsv: it must be ignored
    data = load_glue_dir("mnli", str(tmp_path))
    splits = ["train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched"]
    assert_hub_schema(data, "mnli", splits)
    assert data["train"]["premise"] == ["Conceptually cream .", QUOTED]
    assert data["train"]["hypothesis"] == ["Product .", "You lose ."]
    assert data["train"]["label"] == [1, 0]
    assert data["validation_matched"]["label"] == [2]
    assert data["validation_mismatched"]["label"] == [0, 1]
    assert data["test_mismatched"]["label"] == [-1, -1]
    assert data["test_mismatched"]["idx"] == [0, 1]


def test_qqp_idx_is_row_number(tmp_path):
    header = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    rows = [
        ["133273", "213221", "213222", QUOTED, "How ?", "0"],
        ["402555", "536040", "536041", "Why ?", "Why ?", "1"],
    ]
    write_tsv(tmp_path, "train.tsv", [header, *rows])
    write_tsv(tmp_path, "test.tsv", [["id", "question1", "question2"], ["0", "A ?", "B ?"], ["1", "C ?", "D ?"]])
    data = load_glue_dir("qqp", str(tmp_path))
    assert_hub_schema(data, "qqp", ["train", "test"])
    assert data["train"]["question1"] == [QUOTED, "Why ?"]
    assert data["train"]["label"] == [0, 1]
    assert data["train"]["idx"] == [0, 1]
    assert data["test"]["label"] == [-1, -1]
    assert data["test"]["idx"] == [0, 1]


def test_index_column_gives_idx(tmp_path):
    write_tsv(tmp_path, "test.tsv", [["index", "sentence1", "sentence2"], ["7", "A", "B"], ["3", "C", "D"]])
    assert load_glue_dir("rte", str(tmp_path))["test"]["idx"] == [7, 3]


def test_glue_root_is_accepted(tmp_path):
    write_tsv(
        tmp_path / "RTE", "dev.tsv", [["index", "sentence1", "sentence2", "label"], ["0", "A", "B", "entailment"]]
    )
    assert load_glue_dir("rte", str(tmp_path))["validation"].num_rows == 1


def test_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError) as error:
        load_glue_dir("rte", str(missing))
    assert all(part in str(error.value) for part in (str(missing), "train.tsv, dev.tsv, test.tsv", "--data_dir"))


def test_folder_without_task_files(tmp_path):
    (tmp_path / "README.txt").write_text("nothing here")
    with pytest.raises(UserError) as error:
        load_glue_dir("mnli", str(tmp_path))
    assert all(part in str(error.value) for part in (str(tmp_path), "dev_mismatched.tsv", "--data_dir"))


def test_wrong_field_count(tmp_path):
    write_tsv(
        tmp_path, "dev.tsv", [["index", "sentence1", "sentence2", "label"], ["0", "A", "B", "entailment"], ["1", "C"]]
    )
    with pytest.raises(UserError, match=r"dev\.tsv, line 3: expected 4 tab-separated fields .* found 2"):
        load_glue_dir("rte", str(tmp_path))


def test_unknown_label(tmp_path):
    write_tsv(tmp_path, "train.tsv", [["gj04", "1", "", "A ."], ["gj04", "2", "*", "B ."]])
    with pytest.raises(UserError, match=r"train\.tsv, line 2: label '2'"):
        load_glue_dir("cola", str(tmp_path))


def test_bad_stsb_score(tmp_path):
    write_tsv(tmp_path, "dev.tsv", [STSB_HEADER + ["score"], stsb_row(0, "A", "B", "high")])
    with pytest.raises(UserError, match=r"dev\.tsv, line 2: score 'high'"):
        load_glue_dir("stsb", str(tmp_path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"dev\.tsv is empty"),
        (b"index\tsentence1\tsentence2\tlabel\n0\tCaf\xe9\tB\tentailment\n", r"dev\.tsv is not UTF-8"),
        (b"index\tsentence1\tsentence2\tlabel\nx\tA\tB\tentailment\n", r"dev\.tsv, line 2: index 'x'"),
    ],
)
def test_unreadable_file(tmp_path, content, message):
    (tmp_path / "dev.tsv").write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_glue_dir("rte", str(tmp_path))


def test_header_of_another_task(tmp_path):
    write_tsv(tmp_path, "train.tsv", [["sentence", "label"], ["A .", "1"]])
    with pytest.raises(UserError, match=r"train\.tsv: header has no column 'sentence1'.*RTE"):
        load_glue_dir("rte", str(tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(not GLUE_DIR.is_dir(), reason=f"no GLUE data at {GLUE_DIR} (set GLUE_DIR)")
def test_real_glue_row_counts_match_manifest():
    with open(GLUE_DIR / "MANIFEST.tsv", encoding="utf-8", newline="") as file:
        manifest = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    checked = 0
    for task in GLUE_TASKS.values():
        folder = GLUE_DIR / task.dir_name
        if not folder.is_dir():
            continue
        data = load_glue_dir(task.name, str(folder))
        for entry in (entry for entry in manifest if entry["task"] == task.dir_name):
            split = entry["split"].replace("dev", "validation")
            if entry["rows"] == "MISSING":
                assert split not in data
                continue
            assert data[split].num_rows == int(entry["rows"]), (task.name, split)
            assert data[split].features == HUB_FEATURES[task.name]
            if split in task.test_splits:
                assert set(data[split]["label"]) == {-1}
            checked += 1
    assert checked > 0
