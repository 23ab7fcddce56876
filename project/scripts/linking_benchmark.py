"""The linker's cost with a MeSH-sized KB, and the choice of its nearest-neighbour search.

    python project/scripts/linking_benchmark.py TRAIN_PUBTATOR... --dev DEV_PUBTATOR --output results/linking/benchmark.json

1. Builds a KB from the training files plus synthetic names (about 350k in all, the size of
   MeSH's descriptors and supplementary concepts), saves it, and in a fresh process measures
   what loading it into a `fastbioner_linker` adds to the resident memory, and the linker's own
   time per 1,000 entity mentions (the dev file's gold mentions as entities, so the NER's time
   is not in it), one thread: cold (the linker's cache of texts emptied before the pass) and
   cached (the same texts again, as mentions repeat across a collection).
   The abbreviation component runs before it, as in the pipeline; its own time is reported
   apart (the linker reads its spans).
2. Compares the sparse product top-k of `CharNgramIndex` (exact, and the two-pass search the
   linker uses on a large KB) with scikit-learn's
   `NearestNeighbors(algorithm="brute", metric="cosine")` on the same vectors: time per query
   and recall@10 of the gold concept, on the dev mentions that have no exact match.

The share of a fast student's pipeline time is the linker's time over the student's for the
same mentions: the student's words/s (`--student-words-per-second`, from the benchmark command)
times the words per mention of the dev file.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread, as the speed table is measured

CHEMICAL_PARTS = (
    "methyl ethyl propyl butyl hydroxy amino chloro fluoro bromo nitro oxo phenyl benzo pyrido imidazo "
    "thieno cyclo dihydro tetrahydro acetyl carboxy sulfo cyano methoxy ethoxy iso neo".split(),
    "azole amine amide idine oxide anol anone oate ine ane ene yl-urea ic acid ium ate ide oside "
    "azepine azine ol".split(),
)
DISEASE_PARTS = (
    "acute chronic familial congenital hereditary juvenile idiopathic primary secondary progressive "
    "x-linked autosomal-dominant autosomal-recessive late-onset early-onset benign malignant".split(),
    "renal hepatic cardiac pulmonary cerebral retinal cutaneous gastric colonic pancreatic thyroid adrenal "
    "ovarian testicular spinal muscular neuronal vascular bone breast".split(),
    "carcinoma adenoma neoplasm failure insufficiency dystrophy atrophy fibrosis necrosis inflammation "
    "syndrome disease deficiency hypoplasia dysplasia sarcoma lymphoma cyst stenosis degeneration".split(),
)


def synthetic_names(n: int, seed: int = 0) -> Iterator[Tuple[str, str, str, int]]:
    """n distinct (entity, name, type, 1) records, about 1.4 names per concept, 60% chemicals."""
    rng = random.Random(seed)
    seen: set = set()
    concept = 0
    while len(seen) < n:
        concept += 1
        is_chemical = rng.random() < 0.6
        for _ in range(1 if rng.random() < 0.6 else 2):
            if is_chemical:
                locant = rng.choice(["", "2-", "4-", "1,3-", "N-", "5-"])
                name = locant + "".join(rng.choice(CHEMICAL_PARTS[0]) for _ in range(rng.randint(1, 3)))
                name += rng.choice(CHEMICAL_PARTS[1]) + (f" {rng.randint(2, 99)}" if rng.random() < 0.3 else "")
            else:
                words = [rng.choice(part) for part in DISEASE_PARTS if rng.random() < 0.8 or part is DISEASE_PARTS[2]]
                name = " ".join(words) + (f" type {rng.randint(1, 12)}" if rng.random() < 0.4 else "")
            if name not in seen:
                seen.add(name)
                yield f"S{concept:07d}", name, "Chemical" if is_chemical else "Disease", 1


def build(train: List[Path], n_names: int, kb_dir: Path) -> Dict[str, Any]:
    from spacy_fastbioner.kb import build_kb

    start = time.perf_counter()
    kb = build_kb(pubtator=train)
    n_train = kb.get_size_aliases()
    kb.add_names(synthetic_names(max(n_names - n_train, 0)))
    kb.build()
    kb.to_disk(kb_dir)
    size = sum(f.stat().st_size for f in kb_dir.iterdir())
    return {
        "names": kb.get_size_aliases(),
        "train_names": n_train,
        "concepts": kb.get_size_entities(),
        "build_s": round(time.perf_counter() - start, 1),
        "disk_mb": round(size / 2**20, 1),
    }


def dev_docs(nlp: Any, dev: Path) -> Tuple[List[Any], int, int]:
    """The dev documents as docs whose entities are the gold mentions (no overlaps)."""
    from spacy.util import filter_spans

    from spacy_fastbioner.corpora.readers import read_pubtator

    docs, n_words = [], 0
    for document in read_pubtator(dev):
        doc = nlp.make_doc(document.text)
        spans = [doc.char_span(s, e, label=label, alignment_mode="expand") for s, e, _, label in document.mentions]
        doc.ents = filter_spans([span for span in spans if span is not None])
        docs.append(doc)
        n_words += len(document.text.split())
    return docs, sum(len(doc.ents) for doc in docs), n_words


def measure(kb_dir: Path, dev: Path, repeats: int) -> Dict[str, Any]:
    """In a fresh process: memory added by the KB, and the linker's time per 1,000 mentions."""
    import spacy

    from spacy_fastbioner.kb import ConceptKB
    from spacy_fastbioner.util.process_memory import peak_rss_mb, rss_mb

    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_fastbioner.BioTokenizer.v1"}}})
    docs, n_mentions, n_words = dev_docs(nlp, dev)
    # As in the pipeline: the abbreviation component runs first, and the linker reads its spans.
    abbreviations: Any = nlp.add_pipe("fastbioner_abbreviations", config={"make_consistent": False})
    start = time.perf_counter()
    docs = list(abbreviations.pipe(docs))
    abbreviations_s = time.perf_counter() - start
    linker: Any = nlp.add_pipe("fastbioner_linker")
    before = rss_mb()
    start = time.perf_counter()
    linker.set_kb(ConceptKB().from_disk(kb_dir))
    load_s = time.perf_counter() - start
    loaded = rss_mb()
    list(linker.pipe(docs[:50]))  # warm-up
    times, warm = [], []
    for _ in range(repeats):
        linker._cache.clear()  # cold: every text searched in the KB, as for a new collection
        start = time.perf_counter()
        list(linker.pipe(docs, batch_size=128))
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        list(linker.pipe(docs, batch_size=128))  # warm: the texts seen, as later in a collection
        warm.append(time.perf_counter() - start)
    best = min(times)
    return {
        "n_docs": len(docs),
        "n_mentions": n_mentions,
        "n_words": n_words,
        "load_s": round(load_s, 2),
        "rss_added_by_kb_mb": round(loaded - before, 1),
        "rss_added_after_linking_mb": round(rss_mb() - before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_kb_mb": round(before, 1),
        "linker_s_per_1000_mentions": round(1000 * best / n_mentions, 4),
        "linker_s_per_1000_mentions_cached": round(1000 * min(warm) / n_mentions, 4),
        "abbreviations_component_s_per_1000_mentions": round(1000 * abbreviations_s / n_mentions, 4),
        "linker_s_per_pass": [round(t, 3) for t in times],
    }


def compare_search(kb_dir: Path, dev: Path, n_queries: int) -> Dict[str, Any]:
    """Sparse top-k against brute-force NearestNeighbors on the Chemical and Disease names."""
    from sklearn.neighbors import NearestNeighbors

    from spacy_fastbioner.corpora.readers import read_pubtator
    from spacy_fastbioner.kb import ConceptKB, normalize, split_identifiers

    kb = ConceptKB().from_disk(kb_dir)
    results: Dict[str, Any] = {}
    for type_ in kb.types:
        index = kb._types[type_]  # the type's arrays: this study looks inside on purpose
        mentions = [
            (normalize(text), concept)
            for document in read_pubtator(dev)
            for (_, _, text, label), concept in zip(document.mentions, document.concept_ids)
            if label == type_ and split_identifiers(concept) and index.find(normalize(text).replace(" ", "")) < 0
        ][:n_queries]
        texts = [text for text, _ in mentions]
        start = time.perf_counter()
        ours = index.index.search(texts, 10, names=index.texts)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        exact = index.index.search(texts, 10)
        exact_s = time.perf_counter() - start
        matrix = index.index.inverted.T.tocsr()
        brute = NearestNeighbors(n_neighbors=10, algorithm="brute", metric="cosine", n_jobs=1).fit(matrix)
        start = time.perf_counter()
        _, rows = brute.kneighbors(index.index.vectors(texts))
        brute_s = time.perf_counter() - start

        results[type_] = {
            "names": index.index.n_rows,
            "queries": len(texts),
            "two_pass_sparse_topk_ms_per_query": round(1000 * ours_s / max(len(texts), 1), 3),
            "sparse_topk_ms_per_query": round(1000 * exact_s / max(len(texts), 1), 3),
            "brute_nearest_neighbors_ms_per_query": round(1000 * brute_s / max(len(texts), 1), 3),
            "two_pass_sparse_topk_recall_at_10": _recall(kb, index, mentions, [[r for r, _ in h] for h in ours]),
            "sparse_topk_recall_at_10": _recall(kb, index, mentions, [[r for r, _ in h] for h in exact]),
            "two_pass_overlap_with_exact_top_10": round(
                sum(len({r for r, _ in a} & {r for r, _ in b}) / max(len(b), 1) for a, b in zip(ours, exact))
                / max(len(texts), 1),
                3,
            ),
            "brute_nearest_neighbors_recall_at_10": _recall(kb, index, mentions, [list(r) for r in rows]),
        }
    return results


def _recall(kb: Any, index: Any, mentions: List[Tuple[str, str]], hits: List[List[int]]) -> float:
    """The share of mentions whose concepts are all among the concepts of their hit rows."""
    from spacy_fastbioner.kb import split_identifiers

    found, entity_ids = 0, kb.entity_ids
    for (_, concept), rows in zip(mentions, hits):
        ids = {entity_ids[e] for r in rows for e, _ in index.concepts(r)}
        found += set(split_identifiers(concept)) <= {c for i in ids for c in split_identifiers(i)}
    return round(100 * found / len(mentions), 2) if mentions else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train", nargs="+", type=Path, help="PubTator training files")
    parser.add_argument("--dev", type=Path, required=True, help="PubTator dev file: the mentions to link")
    parser.add_argument("--output", type=Path, required=True, help="Output JSON file")
    parser.add_argument(
        "--kb-dir", type=Path, default=Path("training/linking/synthetic-kb"), help="Where to save the KB"
    )
    parser.add_argument("--n-names", type=int, default=350_000, help="Names in the KB, synthetic ones added")
    parser.add_argument("--repeats", type=int, default=3, help="Timed passes over the dev mentions (best kept)")
    parser.add_argument("--n-queries", type=int, default=300, help="Queries per type in the search comparison")
    parser.add_argument(
        "--student-words-per-second", type=float, default=15915.0,
        help="The fast student's pipeline words/s at one thread (README: the demo benchmark)",
    )  # fmt: skip
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.kb_dir, args.dev, args.repeats)))
        return
    report: Dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "kb": build(args.train, args.n_names, args.kb_dir),
    }
    child = [sys.executable, __file__, *map(str, args.train), "--dev", str(args.dev), "--output", str(args.output)]
    child += ["--kb-dir", str(args.kb_dir), "--repeats", str(args.repeats), "--measure"]
    linker = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    words_per_mention = linker["n_words"] / linker["n_mentions"]
    student_s = 1000 * words_per_mention / args.student_words_per_second
    linker["student_s_per_1000_mentions"] = round(student_s, 4)
    linker["student_words_per_second"] = args.student_words_per_second
    linker["share_of_student_pipeline_time_pct"] = round(100 * linker["linker_s_per_1000_mentions"] / student_s, 2)
    linker["share_of_student_pipeline_time_pct_cached"] = round(
        100 * linker["linker_s_per_1000_mentions_cached"] / student_s, 2
    )
    report["linker"] = linker
    report["search"] = compare_search(args.kb_dir, args.dev, args.n_queries)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
