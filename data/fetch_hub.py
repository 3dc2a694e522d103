"""Download the four ALAd datasets from the Hugging Face hub into the ALAD_DATA_DIR layout (needs internet).

    python data/fetch_hub.py --root ~/alad_data            # all four tasks
    python data/fetch_hub.py --root ~/alad_data --only qa  # some of them
    export ALAD_DATA_DIR=~/alad_data

Unlike the offline copy in shared/data, these are the FULL public splits, so ``alad_kit.data`` uses the
official train/dev/test where they exist (see data/README.md, "How splits are made"):

    pos_ud_de_gsd/{train,dev,test}.conllu   universal-dependencies/universal_dependencies, config de_gsd
                                            (parquet export); only ID, FORM and UPOS are written
    ner_multiconer2_en/{train,dev}.conll    MultiCoNER/multiconer_v2, raw EN-English files (the hub repo may
                                            ask you to accept its terms first: `hf auth login`)
    qa_squad2/{train,dev}-v2.0.json         rajpurkar/squad_v2, rewritten as SQuAD 2.0 JSON
    corpus_en_wiki/wikitext2_raw_*.txt      Salesforce/wikitext, wikitext-2-raw-v1: one paragraph per line,
                                            blank and "= Heading =" lines dropped

Existing files are kept unless --force; every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

from alad_kit.data import load_hub_splits

UD = ("universal-dependencies/universal_dependencies", "de_gsd", {"revision": "refs/convert/parquet"})
MULTICONER = (
    "MultiCoNER/multiconer_v2",
    {"train": "EN-English/en_train.conll", "dev": "EN-English/en_dev.conll"},
)
SQUAD = ("rajpurkar/squad_v2", None)
WIKITEXT = ("Salesforce/wikitext", "wikitext-2-raw-v1")
_HEADING = re.compile(r"=( =)* .* =( =)*")


def _write(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force:
        print(f"keep   {path} (exists; --force to replace)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote  {path}")


def fetch_pos(root: Path, force: bool) -> None:
    name, config, kwargs = UD
    for role, split in load_hub_splits("pos", name, config, **kwargs).items():
        blocks = []
        for row in split:
            words = "".join(
                f"{i}\t{form}\t_\t{tag}\t_\t_\t_\t_\t_\t_\n"
                for i, (form, tag) in enumerate(zip(row["tokens"], row["upos"]), 1)
            )
            blocks.append(f"# sent_id = {row['sent_id']}\n{words}\n")
        _write(root / "pos_ud_de_gsd" / f"{role}.conllu", "".join(blocks), force)


def fetch_ner(root: Path, force: bool) -> None:
    from huggingface_hub import hf_hub_download  # installed with datasets

    repo, files = MULTICONER
    for role, filename in files.items():
        target = root / "ner_multiconer2_en" / f"{role}.conll"
        if target.exists() and not force:
            print(f"keep   {target} (exists; --force to replace)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(hf_hub_download(repo, filename, repo_type="dataset"), tmp)
        os.replace(tmp, target)
        print(f"wrote  {target}")


def squad_json(split) -> str:
    """Rows (id, title, context, question, answers) back to nested SQuAD 2.0 JSON, order kept."""
    articles: dict[str, dict[str, list]] = {}
    for row in split:
        qas = articles.setdefault(row["title"], {}).setdefault(row["context"], [])
        answers = [
            {"text": t, "answer_start": s}
            for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"])
        ]
        qas.append(
            {"id": row["id"], "question": row["question"], "answers": answers, "is_impossible": not answers}
        )
    data = [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()
    ]
    return json.dumps({"version": "v2.0", "data": data}, ensure_ascii=False)


def fetch_qa(root: Path, force: bool) -> None:
    for role, split in load_hub_splits("qa", *SQUAD).items():
        _write(root / "qa_squad2" / f"{role}-v2.0.json", squad_json(split), force)


def fetch_corpus(root: Path, force: bool) -> None:
    suffix = {"train": "train", "dev": "valid", "test": "test"}
    for role, split in load_hub_splits("corpus", *WIKITEXT).items():
        lines = [line.strip() for line in split["text"]]
        kept = [line for line in lines if line and not _HEADING.fullmatch(line)]
        _write(root / "corpus_en_wiki" / f"wikitext2_raw_{suffix[role]}.txt", "\n".join(kept) + "\n", force)


FETCHERS = {"pos": fetch_pos, "ner": fetch_ner, "qa": fetch_qa, "corpus": fetch_corpus}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", default=os.environ.get("ALAD_DATA_DIR"), help="target folder (default: $ALAD_DATA_DIR)"
    )
    parser.add_argument(
        "--only", default=",".join(FETCHERS), help="comma-separated subset of pos,ner,qa,corpus"
    )
    parser.add_argument("--force", action="store_true", help="replace files that already exist")
    args = parser.parse_args(argv)
    if not args.root:
        parser.error("give --root or set ALAD_DATA_DIR")
    tasks = [task.strip() for task in args.only.split(",") if task.strip()]
    unknown = sorted(set(tasks) - set(FETCHERS))
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {list(FETCHERS)}")
    root = Path(args.root).expanduser()
    for task in tasks:
        FETCHERS[task](root, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
