"""alad_kit.data: loaders on tiny fixture files, FILE:LINE errors, seeded leak-free splits, real-data counts."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from alad_kit.data import (
    ENV_VAR,
    data_root,
    dataset_summary,
    grouped_split,
    label_list,
    load_corpus,
    load_ner,
    load_pos,
    load_qa,
    looks_like_local_path,
    read_conll,
    read_conllu,
    texts_for_alignment,
)
from alad_kit.data import hub as hub_module
from alad_kit.data.features import List

# ------------------------------------------------------------------------------------------- fixtures

MWT_SENTENCE = """\
# sent_id = mwt-1
# text = Er geht zum Markt.
1\tEr\ter\tPRON\tPPER\t_\t2\tnsubj\t_\t_
2\tgeht\tgehen\tVERB\tVVFIN\t_\t0\troot\t_\t_
3-4\tzum\t_\t_\t_\t_\t_\t_\t_\t_
3\tzu\tzu\tADP\tAPPR\t_\t5\tcase\t_\t_
4\tdem\tder\tDET\tART\t_\t5\tdet\t_\t_
5\tMarkt\tMarkt\tNOUN\tNN\t_\t2\tobl\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t$.\t_\t2\tpunct\t_\t_

"""


def conllu_sentence(sent_id: str, word: str) -> str:
    return (
        f"# sent_id = {sent_id}\n# text = {word} .\n"
        f"1\t{word}\t{word}\tNOUN\tNN\t_\t0\troot\t_\t_\n2\t.\t.\tPUNCT\t$.\t_\t1\tpunct\t_\t_\n\n"
    )


def multiconer_block(sent_id: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(f"{token} _ _ {tag}\n" for token, tag in rows)
    return f"# id {sent_id}\tdomain=en\n{body}\n\n"


def squad_file(
    path: Path, articles: dict[str, list[tuple[str, list[tuple[str, str, str | None]]]]], gold=True
):
    """articles: title -> [(context, [(qid, question, answer text or None), ...]), ...]."""
    data = []
    for title, paragraphs in articles.items():
        paras = []
        for context, questions in paragraphs:
            qas = []
            for qid, question, answer in questions:
                qa = {"id": qid, "question": question, "answers": []}
                if gold:
                    qa["is_impossible"] = answer is None
                    if answer is not None:
                        qa["answers"] = [{"text": answer, "answer_start": context.index(answer)}]
                qas.append(qa)
            paras.append({"context": context, "qas": qas})
        data.append({"title": title, "paragraphs": paras})
    path.write_text(json.dumps({"version": "v2.0", "data": data}), encoding="utf-8")


def make_squad_articles(n_articles: int, prefix: str = "") -> dict:
    articles = {}
    for a in range(n_articles):
        context = f"Article {prefix}{a} was written in {1900 + a} by Ann."
        articles[f"{prefix}Title_{a}"] = [
            (
                context,
                [
                    (f"{prefix}q{a}a", f"When was {a} written?", str(1900 + a)),
                    (f"{prefix}q{a}b", f"Who painted {a}?", None),
                ],
            ),
            (f"Second paragraph of {prefix}{a}.", [(f"{prefix}q{a}c", f"What is {a}?", "Second paragraph")]),
        ]
    return articles


@pytest.fixture
def data_layout(tmp_path) -> Path:
    """A miniature ALAD_DATA_DIR: the four task folders in the shared/data layout."""
    pos = tmp_path / "pos_ud_de_gsd"
    pos.mkdir()
    dev = MWT_SENTENCE + "".join(conllu_sentence(f"dev-s{i}", f"Wort{i}") for i in range(2, 21))
    (pos / "dev.conllu").write_text(dev, encoding="utf-8")
    (pos / "test.conllu").write_text(conllu_sentence("test-s1", "Haus") + conllu_sentence("test-s2", "Baum"))
    (pos / "LICENSE.txt").write_text("CC BY-SA 4.0\n")

    ner = tmp_path / "ner_multiconer2_en"
    ner.mkdir()
    train = "\n" + "".join(
        multiconer_block(f"id-{i}", [("robert", "B-OtherPER"), (f"word{i}", "I-OtherPER"), ("#", "O")])
        for i in range(30)
    )
    # Same token sequence under two ids: must end up in the same split.
    train += multiconer_block("dup-a", [("same", "O"), ("text", "O")])
    train += multiconer_block("dup-b", [("same", "O"), ("text", "O")])
    (ner / "train.conll").write_text(train, encoding="utf-8")
    (ner / "dev.conll").write_text("\n" + multiconer_block("dev-1", [("paris", "B-HumanSettlement")]))

    qa = tmp_path / "qa_squad2"
    qa.mkdir()
    squad_file(qa / "dev-v2.0-a.json", make_squad_articles(10))
    squad_file(qa / "dev-v2.0-b.json", make_squad_articles(2, prefix="b"), gold=False)

    corpus = tmp_path / "corpus_en_wiki"
    corpus.mkdir()
    (corpus / "b.txt").write_text("second file line\n")
    (corpus / "a.txt").write_text("first line\n\n  \nsecond line\n")
    return tmp_path


@pytest.fixture
def real_data_dir() -> Path:
    if not os.environ.get(ENV_VAR):
        pytest.skip(f"{ENV_VAR} not set")
    return data_root()


def rows(dataset: Dataset, column: str) -> set:
    return {tuple(v) if isinstance(v, list) else v for v in dataset[column]}


# ------------------------------------------------------------------------------------------------ POS


def test_load_pos_skips_multiword_ranges_and_splits_dev(data_layout):
    splits = load_pos(data_layout / "pos_ud_de_gsd")
    assert list(splits) == ["train", "validation", "test"]
    assert (len(splits["train"]), len(splits["validation"]), len(splits["test"])) == (18, 2, 2)
    everything = {s: dict(zip(d["sent_id"], zip(d["tokens"], d["upos"]))) for s, d in splits.items()}
    merged = everything["train"] | everything["validation"]
    tokens, upos = merged["mwt-1"]
    assert tokens == ["Er", "geht", "zu", "dem", "Markt", "."]  # "zum" (3-4) skipped, its words kept
    assert upos == ["PRON", "VERB", "ADP", "DET", "NOUN", "PUNCT"]
    assert splits["test"]["sent_id"] == ["test-s1", "test-s2"]  # test.conllu untouched, in file order


def test_read_conllu_counts_empty_nodes_and_empty_sentences(tmp_path):
    file = tmp_path / "x.conllu"
    empty_node = "1.1\tist\tsein\tAUX\t_\t_\t_\t_\t0:root\t_\n"
    file.write_text(
        MWT_SENTENCE.replace("6\t.", empty_node + "6\t.") + "# sent_id = only-comments\n\n" + MWT_SENTENCE
    )
    with pytest.warns(UserWarning) as caught:
        columns = read_conllu(file)
    messages = " | ".join(str(w.message) for w in caught)
    assert "skipped 1 sentence(s) without word rows" in messages
    assert "skipped 1 empty node row(s)" in messages
    assert len(columns["tokens"]) == 2 and columns["tokens"][0] == columns["tokens"][1]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("7\tzu\tzu\tADP\tAPPR\t_\t5\tcase\t_", "needs 10 tab-separated columns, found 9"),
        ("x\tzu\tzu\tADP\tAPPR\t_\t5\tcase\t_\t_", "CoNLL-U parse error"),
        ("6\tzu\tzu\t_\tAPPR\t_\t5\tcase\t_\t_", "has no UPOS"),
        ("7\tzu\tzu\tADP\tAPPR\t_\t5\tcase\t_\t_", r"CoNLL-U id 7 out of order \(expected 6\)"),
        ("5\tzu\tzu\tADP\tAPPR\t_\t5\tcase\t_\t_", r"CoNLL-U id 5 out of order \(expected 6\)"),
        ("6\tzu\tzu\tNN\tAPPR\t_\t5\tcase\t_\t_", "UPOS tag 'NN' is not one of the 17 UD tags"),
        ("6\t\u200b\tzu\tADP\tAPPR\t_\t5\tcase\t_\t_", r"token '\\u200b' has only invisible characters \(U\+200B\)"),
    ],
)
def test_read_conllu_errors_name_file_and_line(tmp_path, bad_row, message):
    file = tmp_path / "bad.conllu"
    file.write_text(conllu_sentence("s1", "Haus") + MWT_SENTENCE.replace("6\t.", bad_row + "\n6\t."))
    with pytest.raises(ValueError, match=rf"bad\.conllu:14: .*{message}"):
        read_conllu(file)


# ------------------------------------------------------------------------------------------------ NER


def test_load_ner_multiconer_dev_becomes_test(data_layout):
    splits = load_ner(data_layout / "ner_multiconer2_en")
    assert list(splits) == ["train", "validation", "test"]
    assert splits["test"]["id"] == ["dev-1"] and splits["test"]["ner_tags"] == [["B-HumanSettlement"]]
    assert len(splits["train"]) + len(splits["validation"]) == 32
    first = splits["train"][0] if splits["train"]["id"][0] == "id-0" else splits["validation"][0]
    assert first["tokens"] == ["robert", "word0", "#"]  # the token "#" is data, not a header
    assert first["ner_tags"] == ["B-OtherPER", "I-OtherPER", "O"]
    # The two ids with identical text are never split apart.
    in_train = {"dup-a", "dup-b"} & set(splits["train"]["id"])
    assert in_train in (set(), {"dup-a", "dup-b"})


def test_read_conll_two_column_with_docstart(tmp_path):
    file = tmp_path / "eng.conll"
    file.write_text("-DOCSTART- O\n\nEU\tB-ORG\nrejects O\n\n\nPeter B-PER\nBlackburn I-PER\n")
    columns = read_conll(file)
    assert columns == {
        "id": ["eng-1", "eng-2"],
        "tokens": [["EU", "rejects"], ["Peter", "Blackburn"]],
        "ner_tags": [["B-ORG", "O"], ["B-PER", "I-PER"]],
    }


def test_read_conll_warns_about_headers_without_tokens(tmp_path):
    file = tmp_path / "train.conll"
    file.write_text(
        multiconer_block("a", [("x", "O")]) + "# id empty\tdomain=en\n\n" + multiconer_block("b", [])
    )
    with pytest.warns(UserWarning, match="skipped 2 sentence header"):
        columns = read_conll(file)
    assert columns["id"] == ["a"]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("paris B-LOC", r"NER row has 2 columns, expected 4 \(as on line 2\)"),
        ("paris _ _ X-foo", "invalid BIO tag 'X-foo'"),
    ],
)
def test_read_conll_errors_name_file_and_line(tmp_path, bad_row, message):
    file = tmp_path / "bad.conll"
    file.write_text(multiconer_block("a", [("x", "O")]) + f"# id b\tdomain=en\ny _ _ O\n{bad_row}\n")
    with pytest.raises(ValueError, match=rf"bad\.conll:7: {message}"):
        read_conll(file)


@pytest.mark.parametrize(
    ("rows", "repaired", "line", "first"),
    [
        ([("Paris", "I-LOC"), ("is", "O")], ["B-LOC", "O"], 2, "'I-LOC' at the sentence start continues no entity"),
        ([("a", "O"), ("New", "I-LOC"), ("York", "I-LOC")], ["O", "B-LOC", "I-LOC"], 3,
         "'I-LOC' after 'O' continues no entity"),
        ([("Ann", "B-PER"), ("Corp", "I-ORG")], ["B-PER", "B-ORG"], 3, "'I-ORG' after 'B-PER' continues no entity"),
    ],
)
def test_bio_sequences_are_repaired_as_seqeval_reads_them_or_refused_when_strict(tmp_path, rows, repaired, line,
                                                                                   first):
    from seqeval.metrics.sequence_labeling import get_entities

    file = tmp_path / "train.conll"
    file.write_text(multiconer_block("a", rows) + multiconer_block("b", [("x", "B-PER"), ("y", "I-PER")]))
    with pytest.warns(UserWarning, match=rf"repaired \d BIO tag\(s\) in 1 sentence\(s\).*line {line}: {first}"):
        columns = read_conll(file)
    assert columns["ner_tags"] == [repaired, ["B-PER", "I-PER"]]
    original = [tag for _, tag in rows]
    assert get_entities(repaired) == get_entities(original)  # the entities seqeval scores do not change
    with pytest.raises(ValueError, match=rf"train\.conll:{line}: invalid BIO sequence: {first}.*\(strict\)"):
        read_conll(file, strict=True)
    with pytest.raises(ValueError, match=rf"train\.conll:{line}: invalid BIO"):
        load_ner(file, strict=True)


def test_valid_bio_is_not_touched_and_not_warned(tmp_path):
    file = tmp_path / "train.conll"
    file.write_text(multiconer_block("a", [("x", "B-PER"), ("y", "I-PER"), ("z", "B-PER"), ("w", "O")]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_conll(file, strict=True)["ner_tags"] == [["B-PER", "I-PER", "B-PER", "O"]]


@pytest.mark.parametrize("token", ["\u200b", "\u200b\u200d", "\ufeff\u2060", "\xa0"])
def test_a_token_without_visible_characters_is_refused_with_its_line(tmp_path, token):
    file = tmp_path / "train.conll"
    file.write_text(multiconer_block("a", [("x", "O"), (token, "O")]))
    with pytest.raises(ValueError, match=r"train\.conll:3: token .* has only invisible characters"):
        read_conll(file)


@pytest.mark.parametrize("reader, name", [(read_conll, "train.conll"), (read_conllu, "dev.conllu")])
@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"\n\n", "empty file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", r":1: not UTF-8 text \(byte 0x89 at column 1\); is it a binary file"),
    (b"\x00\x01\x02\n", ":1: contains a NUL byte"),
])
def test_empty_and_binary_files_are_refused_naming_the_file(tmp_path, reader, name, content, message):
    file = tmp_path / name
    file.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{name}{'' if message.startswith(':') else ': .*'}{message}"):
        reader(file)


def test_a_utf8_bom_is_not_part_of_the_first_line(tmp_path):
    file = tmp_path / "dev.conllu"
    file.write_bytes(b"\xef\xbb\xbf" + conllu_sentence("s1", "Haus").encode())
    assert read_conllu(file)["sent_id"] == ["s1"]


# ------------------------------------------------------------------------------------------------- QA


def test_load_qa_splits_by_article_and_keeps_unlabeled(data_layout):
    splits = load_qa(data_layout / "qa_squad2")
    assert list(splits) == ["train", "validation", "test", "unlabeled"]
    assert [len(set(splits[s]["title"])) for s in ("train", "validation", "test")] == [6, 2, 2]
    assert sum(len(splits[s]) for s in ("train", "validation", "test")) == 30
    titles = [rows(splits[s], "title") for s in ("train", "validation", "test")]
    assert not (titles[0] & titles[1] or titles[0] & titles[2] or titles[1] & titles[2])
    everything = {r["id"]: r for s in ("train", "validation", "test") for r in splits[s]}
    assert everything["q3b"]["answers"] == {"text": [], "answer_start": []}  # unanswerable kept
    assert everything["q3a"]["answers"] == {"text": ["1903"], "answer_start": [25]}
    assert len(splits["unlabeled"]) == 6 and rows(splits["unlabeled"], "title") == {"bTitle_0", "bTitle_1"}
    assert all(a == {"text": [], "answer_start": []} for a in splits["unlabeled"]["answers"])


def test_load_qa_unlabeled_file_alone_gives_only_unlabeled(data_layout):
    with pytest.warns(UserWarning, match="no gold answers"):
        splits = load_qa(data_layout / "qa_squad2" / "dev-v2.0-b.json")
    assert list(splits) == ["unlabeled"] and len(splits["unlabeled"]) == 6


def test_load_qa_errors_name_the_question(tmp_path):
    file = tmp_path / "train.json"
    squad_file(file, make_squad_articles(1))
    payload = json.loads(file.read_text())
    del payload["data"][0]["paragraphs"][1]["qas"][0]["question"]
    file.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=r"train\.json: question q0c: missing key 'question'"):
        load_qa(file)
    payload = json.loads(file.read_text())
    payload["data"][0]["paragraphs"][1]["qas"][0].update(
        question="?", answers=[{"text": "zz", "answer_start": 0}]
    )
    file.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="question q0c: answer 'zz' is not at offset 0"):
        load_qa(file)
    file.write_text('{"data": [\n  {"title": }\n]}')
    with pytest.raises(ValueError, match=r"train\.json:2: invalid JSON"):
        load_qa(file)


def _squad_edit(file, edit):
    squad_file(file, make_squad_articles(1))
    payload = json.loads(file.read_text())
    edit(payload["data"][0]["paragraphs"])
    file.write_text(json.dumps(payload))


def _answer(paragraphs, **change):
    paragraphs[0]["qas"][0]["answers"][0].update(change)


@pytest.mark.parametrize("edit, message", [
    (lambda ps: _answer(ps, answer_start=-1), "question q0a: answer '1900' is not at offset -1"),
    (lambda ps: _answer(ps, answer_start=-34), "question q0a: answer '1900' is not at offset -34"),
    (lambda ps: _answer(ps, answer_start=500), "question q0a: answer '1900' is not at offset 500"),
    (lambda ps: _answer(ps, answer_start="20"), "question q0a answer: 'answer_start' must be an integer, got str"),
    (lambda ps: _answer(ps, answer_start=True), "question q0a answer: 'answer_start' must be an integer, got bool"),
    (lambda ps: _answer(ps, text=1900), "question q0a answer: 'text' must be a string, got int"),
    (lambda ps: _answer(ps, text=""), "question q0a: empty answer text"),
    (lambda ps: ps[0].update(context=["a", "b"]), "paragraph #0: 'context' must be a string, got list"),
    (lambda ps: ps[0]["qas"][0].update(id=7), "question #0: 'id' must be a string, got int"),
    (lambda ps: ps[0]["qas"][0].update(question=None), "question q0a: 'question' must be a string, got NoneType"),
    (lambda ps: ps[0]["qas"][0].update(answers={"text": "x"}), "question q0a: 'answers' must be a list"),
    (lambda ps: ps[0]["qas"][0].update(is_impossible="no"), "question q0a: 'is_impossible' must be true or false"),
])
def test_squad_types_and_offsets_are_checked_with_the_question_id(tmp_path, edit, message):
    file = tmp_path / "train.json"
    _squad_edit(file, edit)
    with pytest.raises(ValueError, match=rf"train\.json: .*{re.escape(message)}"):
        load_qa(file)


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b'{"data": []}', "no questions"),
    (b'{"data": [{"title": "\xff\xfe"}]}', r"not UTF-8 text \(byte 0xff"),
])
def test_empty_and_binary_squad_files_name_the_file(tmp_path, content, message):
    file = tmp_path / "train.json"
    file.write_bytes(content)
    with pytest.raises(ValueError, match=rf"train\.json.*{message}"):
        load_qa(file)


# --------------------------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("content, message", [
    (b"", "the corpus has no non-blank lines"),
    (b"\n  \n", "the corpus has no non-blank lines"),
    (b"good line\n\xff\xd8\xff\xe0 jpeg\n", r"wiki\.txt:2: not UTF-8 text"),
])
def test_an_unreadable_corpus_is_an_error_naming_the_file(tmp_path, content, message):
    (tmp_path / "wiki.txt").write_bytes(content)
    with pytest.raises(ValueError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_corpus(tmp_path)


def test_load_corpus_folder_sorted_blank_lines_counted(data_layout):
    with pytest.warns(UserWarning, match="dropped 2 blank line"):
        corpus = load_corpus(data_layout / "corpus_en_wiki")
    assert corpus["text"] == ["first line", "second line", "second file line"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_corpus(data_layout / "corpus_en_wiki", max_lines=2)["text"] == [
            "first line",
            "second line",
        ]
    assert load_corpus(data_layout / "corpus_en_wiki" / "b.txt")["text"] == ["second file line"]
    with pytest.raises(ValueError, match="max_lines"):
        load_corpus(data_layout / "corpus_en_wiki", max_lines=0)


# --------------------------------------------------------------------------------------------- splits


def test_grouped_split_is_seeded_leak_free_and_complete():
    ids = [f"s{i}" for i in range(200)]
    texts = [[f"t{i % 150}"] for i in range(200)]  # 50 texts occur twice, under different ids
    ds = Dataset.from_dict({"id": ids, "tokens": texts})
    fractions = {"train": 0.7, "validation": 0.15, "test": 0.15}
    a = grouped_split(ds, ["id", "tokens"], fractions, seed=0)
    b = grouped_split(ds, ["id", "tokens"], fractions, seed=0)
    c = grouped_split(ds, ["id", "tokens"], fractions, seed=1)
    assert all(a[s]["id"] == b[s]["id"] for s in fractions)
    assert a["validation"]["id"] != c["validation"]["id"]
    assert sum(len(a[s]) for s in fractions) == 200
    assert [len(rows(a[s], "tokens")) for s in ("validation", "test")] == [23, 23]  # floor(0.15 * 150 + 0.5)
    for x, y in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not rows(a[x], "tokens") & rows(a[y], "tokens")
        assert not rows(a[x], "id") & rows(a[y], "id")
    with pytest.raises(ValueError, match="cannot split 2 group"):
        grouped_split(ds.select([0, 1]), ["id"], fractions)


def test_loader_splits_are_deterministic_and_seed_dependent(data_layout):
    folder = data_layout / "ner_multiconer2_en"
    assert load_ner(folder, seed=3)["validation"]["id"] == load_ner(folder, seed=3)["validation"]["id"]
    assert load_ner(folder, seed=3)["validation"]["id"] != load_ner(folder, seed=4)["validation"]["id"]
    with pytest.raises(ValueError, match="validation_fraction"):
        load_ner(folder, validation_fraction=1.5)


# ------------------------------------------------------------------------------------ paths and hub


def test_data_root_and_default_paths(data_layout, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match=f"{ENV_VAR} is not set"):
        load_pos()
    monkeypatch.setenv(ENV_VAR, str(data_layout / "missing"))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        data_root()
    monkeypatch.setenv(ENV_VAR, str(data_layout))
    assert data_root() == data_layout.resolve()
    assert len(load_pos()["test"]) == 2


@pytest.mark.parametrize("path", ["./nope", "/no/such/dir", "a/b/c", "train.conll", "sub/x.json", "~/x"])
def test_missing_local_looking_path_is_not_sent_to_the_hub(path, monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("hub must not be called")

    monkeypatch.setattr(hub_module.datasets, "load_dataset", no_hub)
    assert looks_like_local_path(path)
    for loader in (load_pos, load_ner, load_qa, load_corpus):
        with pytest.raises(FileNotFoundError, match="no such file or directory"):
            loader(path)


@pytest.mark.parametrize("name", ["squad_v2", "conll2003", "eriktks/conll2003", "Salesforce/wikitext"])
def test_hub_ids_are_not_local(name):
    assert not looks_like_local_path(name)


def test_hub_ids_are_mapped_to_our_fields(monkeypatch):
    """Offline stand-ins for hub datasets: ClassLabel ints -> strings, UD multiword rows ("_") dropped."""
    upos = ClassLabel(names=["NOUN", "_", "ADP", "DET"])
    ud = Dataset.from_dict(
        {"idx": ["s1"], "tokens": [["zum", "zu", "dem", "Haus"]], "upos": [[1, 2, 3, 0]]},
        features=Features({"idx": Value("string"), "tokens": List(Value("string")), "upos": List(upos)}),
    )
    squad_rows = [
        {
            "id": f"{t}-{k}",
            "title": t,
            "context": f"c{t}",
            "question": "q",
            "answers": {"text": [], "answer_start": []},
        }
        for t in "ABCDE"
        for k in range(2)
    ]
    fake = {
        "ud": DatasetDict(train=ud, validation=ud, test=ud),
        "squad": DatasetDict(
            train=Dataset.from_list(squad_rows), validation=Dataset.from_list(squad_rows[:2])
        ),
    }
    monkeypatch.setattr(hub_module.datasets, "load_dataset", lambda name, config=None, **kw: fake[name])
    pos = load_pos("ud", config="de_gsd")
    assert list(pos) == ["train", "validation", "test"]
    assert pos["test"][0] == {
        "sent_id": "s1",
        "tokens": ["zu", "dem", "Haus"],
        "upos": ["ADP", "DET", "NOUN"],
    }
    qa = load_qa("squad", validation_fraction=0.2, test_fraction=0.2)
    assert (len(qa["train"]), len(qa["validation"]), len(qa["test"]), len(qa["unlabeled"])) == (8, 2, 2, 0)
    assert not rows(qa["train"], "title") & rows(qa["validation"], "title")


# ------------------------------------------------------------------------------------------ read-outs


def test_label_list_and_alignment_texts(data_layout):
    ner = load_ner(data_layout / "ner_multiconer2_en")
    assert label_list(ner, "ner_tags") == ["O", "B-HumanSettlement", "B-OtherPER", "I-OtherPER"]
    assert label_list(load_pos(data_layout / "pos_ud_de_gsd"), "upos") == [
        "ADP",
        "DET",
        "NOUN",
        "PRON",
        "PUNCT",
        "VERB",
    ]
    assert texts_for_alignment("ner", ner["test"]) == [["paris"]]
    qa = load_qa(data_layout / "qa_squad2")
    texts = texts_for_alignment("qa", qa["train"])
    contexts, questions = set(qa["train"]["context"]), list(qa["train"]["question"])
    # the one definition phase 2 uses (tasks.specs.SpanTask.texts): contexts once, every question
    assert len(texts) == len(contexts) + len(questions) and set(texts) == contexts | set(questions)
    repeated = Dataset.from_dict({"context": ["c1", "c1", "c2"], "question": ["q", "q", "r"]})
    assert texts_for_alignment("qa", repeated) == ["c1", "c2", "q", "q", "r"]  # a repeated question stays
    with pytest.raises(ValueError, match="one split"):
        texts_for_alignment("qa", qa)


def test_dataset_summary_reports_found_missing_and_counts(data_layout, monkeypatch):
    (data_layout / "corpus_en_wiki" / "a.txt").unlink()
    (data_layout / "corpus_en_wiki" / "b.txt").unlink()
    summary = dataset_summary(data_layout)
    assert summary["pos"]["splits"]["test"] == {"sentences": 2, "tokens": 4}
    assert summary["ner"]["splits"]["test"] == {"sentences": 1, "tokens": 1, "entities": 1}
    assert summary["qa"]["splits"]["unlabeled"] == {"articles": 2, "questions": 6}
    qa = summary["qa"]["splits"]
    assert sum(qa[s]["answerable"] for s in ("train", "validation", "test")) == 20
    assert summary["corpus"]["found"] and "no .txt files" in summary["corpus"]["error"]
    monkeypatch.delenv(ENV_VAR, raising=False)
    unset = dataset_summary()
    assert unset["root"] is None and ENV_VAR in unset["error"] and not unset["pos"]["found"]


# ------------------------------------------------------------------------ real data (MANIFEST counts)


def _tag_counts(split, field):
    return len(split), sum(len(seq) for seq in split[field])


@pytest.mark.data
def test_real_pos_counts(real_data_dir):
    splits = load_pos()
    train, validation, test = (splits[s] for s in ("train", "validation", "test"))
    assert _tag_counts(test, "upos") == (977, 16_499)
    assert len(train) + len(validation) == 799
    assert _tag_counts(train, "upos")[1] + _tag_counts(validation, "upos")[1] == 12_480
    assert len(validation) == 80
    assert not rows(train, "sent_id") & rows(validation, "sent_id")
    assert not rows(train, "tokens") & rows(validation, "tokens")
    assert len(label_list(splits, "upos")) == 17


@pytest.mark.data
def test_real_ner_counts(real_data_dir):
    splits = load_ner()
    train, validation, test = (splits[s] for s in ("train", "validation", "test"))
    assert _tag_counts(test, "ner_tags") == (871, 13_323)
    assert len(train) + len(validation) == 16_766
    assert _tag_counts(train, "ner_tags")[1] + _tag_counts(validation, "ner_tags")[1] == 252_808
    assert not rows(train, "id") & rows(validation, "id")
    assert not rows(train, "tokens") & rows(validation, "tokens")
    labels = label_list(splits, "ner_tags")
    assert labels[0] == "O" and len(labels) == 1 + 2 * 33


@pytest.mark.data
def test_real_qa_counts(real_data_dir):
    splits = load_qa()
    labeled = [splits[s] for s in ("train", "validation", "test")]
    assert sum(map(len, labeled)) == 6_078
    answerable = sum(bool(a["text"]) for split in labeled for a in split["answers"])
    assert answerable == 2_910
    titles = [rows(split, "title") for split in labeled]
    assert sum(map(len, titles)) == len(set().union(*titles)) == 16
    assert len(splits["unlabeled"]) == 5_915 and len(rows(splits["unlabeled"], "title")) == 20


@pytest.mark.data
def test_real_corpus_counts(real_data_dir):
    corpus = load_corpus()
    assert len(corpus) == 19_016
    assert sum(len(line.split()) for line in corpus["text"]) == 946_324
    assert len(load_corpus(max_lines=100)) == 100


# ----------------------------------------------------------------------------- data/fetch_hub.py (offline)


def test_fetch_hub_script_writes_files_our_loaders_read(tmp_path, monkeypatch, capsys):
    """The download script, with the hub replaced by tiny in-memory datasets, writes the ALAD_DATA_DIR layout."""
    import importlib.util

    import huggingface_hub

    spec = importlib.util.spec_from_file_location(
        "fetch_hub", Path(__file__).parents[2] / "data" / "fetch_hub.py"
    )
    fetch_hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch_hub)

    upos = ClassLabel(names=["NOUN", "_", "ADP", "DET"])
    ud_features = Features({"idx": Value("string"), "tokens": List(Value("string")), "upos": List(upos)})
    ud = Dataset.from_dict(
        {"idx": ["s1"], "tokens": [["zum", "zu", "dem", "Haus"]], "upos": [[1, 2, 3, 0]]},
        features=ud_features,
    )
    squad_rows = [
        {
            "id": f"{t}{k}",
            "title": t,
            "context": f"In {t} 1900.",
            "question": "When?",
            "answers": {"text": ["1900"], "answer_start": [len(t) + 4]}
            if k
            else {"text": [], "answer_start": []},
        }
        for t in "ABCDE"
        for k in range(2)
    ]
    wiki = Dataset.from_dict(
        {"text": [" = Title = ", "", " A paragraph . ", " = = Part = = ", "More text ."]}
    )
    fake = {
        fetch_hub.UD[0]: DatasetDict(train=ud, validation=ud, test=ud),
        fetch_hub.SQUAD[0]: DatasetDict(
            train=Dataset.from_list(squad_rows), validation=Dataset.from_list(squad_rows[:2])
        ),
        fetch_hub.WIKITEXT[0]: DatasetDict(train=wiki, validation=wiki, test=wiki),
    }
    monkeypatch.setattr(hub_module.datasets, "load_dataset", lambda name, config=None, **kw: fake[name])
    conll = tmp_path / "raw.conll"
    conll.write_text(
        multiconer_block("x", [("paris", "B-HumanSettlement")]) + multiconer_block("y", [("a", "O")])
    )
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *args, **kwargs: str(conll))

    assert fetch_hub.main(["--root", str(tmp_path / "root")]) == 0
    root = tmp_path / "root"
    pos = load_pos(root / "pos_ud_de_gsd")
    assert pos["train"][0] == {
        "sent_id": "s1",
        "tokens": ["zu", "dem", "Haus"],
        "upos": ["ADP", "DET", "NOUN"],
    }
    assert load_ner(root / "ner_multiconer2_en")["test"]["ner_tags"] == [["B-HumanSettlement"], ["O"]]
    qa = load_qa(root / "qa_squad2")
    assert len(qa["test"]) == 2 and sum(len(qa[s]) for s in ("train", "validation")) == 10
    assert {r["id"]: r["answers"] for r in qa["test"]} == {
        "A0": {"text": [], "answer_start": []},
        "A1": {"text": ["1900"], "answer_start": [5]},
    }
    corpus = load_corpus(root / "corpus_en_wiki")
    assert corpus["text"] == ["A paragraph .", "More text ."] * 3
    capsys.readouterr()
    fetch_hub.main(["--root", str(root), "--only", "corpus"])
    assert capsys.readouterr().out.count("keep ") == 3  # existing files are not replaced without --force
