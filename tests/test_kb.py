"""Tests for spacy_fastbioner.kb: name normalisation, the MeSH / CTD / PubTator readers on tiny
fixtures that follow the real schemas, KB building, candidates and serialisation."""

import gzip
import pickle
from pathlib import Path
from typing import List

import numpy as np
import pytest

from spacy_fastbioner.corpora.readers import read_pubtator
from spacy_fastbioner.kb import ConceptKB, KBFormatError, KBSourceError, build_kb, normalize, split_identifiers
from spacy_fastbioner.kb.candidates import CharNgramIndex
from spacy_fastbioner.kb.names import baseline_key, match_key, stem_key, variants
from spacy_fastbioner.kb.sources import (
    NameRecord,
    ctd_identifier,
    pubtator_names,
    read_ctd,
    read_mesh,
    read_mesh_descriptors,
    read_mesh_supplementary,
    read_pubtator_names,
)

FIXTURES = Path(__file__).parent / "fixtures" / "kb"
TITLE = "Breast and ovarian cancer in carriers."
ABSTRACT = "Lithium toxicity and breast cancer were seen; breast cancer again."
PUBTATOR = (
    f"1|t|{TITLE}\n1|a|{ABSTRACT}\n"
    "1\t0\t25\tBreast and ovarian cancer\tCompositeMention\tD001943|D010051\n"
    "1\t39\t46\tLithium\tChemical\tD008094\n"
    "1\t60\t73\tbreast cancer\tDiseaseClass\tD001943\n"
    "1\t85\t98\tbreast cancer\tDiseaseClass\tD001943\n"
    "1\t39\t55\tLithium toxicity\tDisease\t-1\n"
    "1\tCID\tD008094\tD064420\n\n"
)


def write_pubtator(tmp_path: Path, text: str = PUBTATOR) -> Path:
    path = tmp_path / "train.txt"
    path.write_text(text, encoding="utf8")
    return path


def records(kb_records: List[NameRecord]) -> List[tuple]:
    return [tuple(r) for r in kb_records]


# Normalisation
@pytest.mark.parametrize(
    "a,b",
    [
        ("Breast Cancers", "breast cancer"),
        ("beta-catenin", "β catenin"),
        ("α-tocopherol", "alpha-Tocopherol"),
        ("Alzheimer's disease", "Alzheimer disease"),
        ("haemorrhages", "hemorrhage"),
        ("tumours", "tumor"),
        ("therapies", "therapy"),
        ("liver tumour", "hepatic neoplasm"),
    ],
)
def test_normalize_meets_variants(a: str, b: str) -> None:
    assert match_key(a) == match_key(b)


def test_normalize_keeps_words_apart_and_short_words() -> None:
    assert normalize("Non-insulin-dependent diabetes") == "non insulin dependent diabete"
    assert normalize("HIS") == "his" and normalize("cis") == "cis"  # short words keep their s
    assert normalize("---") == "" and match_key("---") == ""
    assert match_key("beta catenin") == match_key("betacatenin")


def test_stem_key_meets_derived_forms() -> None:
    assert stem_key("ischemic") == stem_key("ischemia")
    assert stem_key("hypertrophic") == stem_key("hypertrophy")
    assert stem_key("thromboembolic") == stem_key("thromboembolism")
    assert stem_key("seizure") != stem_key("sepsis")


@pytest.mark.parametrize(
    "mention,variant",
    [
        ("Wilson's disease", "wilson"),
        ("Wilson disease", "wilson syndrome"),
        ("demyelination of the central nervous system", "central nervous system demyelination"),
        ("type II diabetes", "type 2 diabete"),
        ("stage 3 tumours", "stage iii neoplasm"),
        ("breast carcinomas", "breast neoplasm"),
        ("sodium warfarin", "warfarin"),
        ("dothiepin hydrochloride", "dothiepin"),
    ],
)
def test_variants_of_a_mention(mention: str, variant: str) -> None:
    assert variant in variants(normalize(mention))


def test_variants_keep_a_word_and_the_rest_of_the_name() -> None:
    assert variants(normalize("disease")) == [] and variants(normalize("sodium")) == []
    assert variants(normalize("carcinoma")) == []  # a site's carcinoma only
    assert variants(normalize("fragile X syndrome"))[0] == "fragile x"  # X is no numeral here
    assert all("10" not in v for v in variants(normalize("fragile X syndrome")))


def test_variant_of_a_mention_is_a_candidate() -> None:
    kb = ConceptKB()
    kb.add_alias("breast neoplasm", ["D001943"], [1], type_="Disease")
    kb.add_alias("carcinoma", ["D002277"], [3], type_="Disease")
    kb.add_alias("warfarin", ["D014859"], [1], type_="Chemical")
    found = kb.get_candidates_batch(["breast carcinoma", "sodium warfarin"], None, k=5)
    assert [(c.entity_, c.match) for c in found[0] if c.match == "variant"] == [("D001943", "variant")]
    assert found[1][0].entity_ == "D014859" and found[1][0].match == "variant"


def test_baseline_key_is_the_issues_rule() -> None:
    assert baseline_key("Breast-Cancers") == "breast cancer"
    assert baseline_key("colon cancers") == "colon cancer"


def test_split_identifiers() -> None:
    assert split_identifiers("D001943|D010051") == ["D001943", "D010051"]
    assert split_identifiers("D020279+D035583") == ["D020279", "D035583"]
    assert split_identifiers(" D008661") == ["D008661"]
    assert split_identifiers("-1") == [] and split_identifiers("") == []


# Readers
def test_pubtator_names_count_mentions_and_skip_nil(tmp_path: Path) -> None:
    found = records(list(read_pubtator_names(write_pubtator(tmp_path))))
    assert found == [
        ("D001943|D010051", "Breast and ovarian cancer", "Disease", 1),
        ("D008094", "Lithium", "Chemical", 1),
        ("D001943", "breast cancer", "Disease", 2),
        # the composite's conjuncts, each a name of its concept
        ("D001943", "Breast cancer", "Disease", 1),
        ("D010051", "ovarian cancer", "Disease", 1),
    ]
    assert len(list(pubtator_names(read_pubtator(write_pubtator(tmp_path)), conjuncts=False))) == 3


def test_conjunct_names_follow_the_concepts_named_elsewhere(tmp_path: Path) -> None:
    # The corpus writes the pair in the other order; "breast cancer" is D001943 elsewhere.
    text = PUBTATOR.replace("CompositeMention\tD001943|D010051", "CompositeMention\tD010051|D001943")
    found = [(r.entity, r.name) for r in read_pubtator_names(write_pubtator(tmp_path, text))]
    assert ("D001943", "Breast cancer") in found and ("D010051", "ovarian cancer") in found
    assert ("D010051", "Breast cancer") not in found


def test_pubtator_names_error_names_line(tmp_path: Path) -> None:
    bad = PUBTATOR.replace("1\t39\t46\tLithium", "1\t39\tx\tLithium")
    with pytest.raises(KBSourceError, match=r"train\.txt:4: expected integer offsets"):
        list(read_pubtator_names(write_pubtator(tmp_path, bad)))


def test_mesh_descriptors_keep_disease_and_chemical_trees() -> None:
    found = records(list(read_mesh_descriptors(FIXTURES / "desc_tiny.xml")))
    assert ("D009369", "Neoplasms", "Disease", 1) in found
    assert ("D009369", "Tumors", "Disease", 1) in found
    assert ("D009369", "Cancer", "Disease", 1) in found
    assert ("D008094", "Lithium", "Chemical", 1) in found
    assert not any(r[0] == "D001769" for r in found)  # Blood: an anatomy tree, skipped
    assert len([r for r in found if r[0] == "D009369"]) == 3  # the preferred name once


def test_mesh_supplementary_classes() -> None:
    found = records(list(read_mesh_supplementary(FIXTURES / "supp_tiny.xml")))
    assert ("C000002", "bevonium methyl sulfate", "Chemical", 1) in found
    assert ("C538445", "clear-cell renal cell carcinoma", "Disease", 1) in found
    assert not any(r[0] == "C040000" for r in found)  # a protocol


def test_read_mesh_tells_files_apart_and_reads_gzip(tmp_path: Path) -> None:
    packed = tmp_path / "supp2024.xml.gz"
    packed.write_bytes(gzip.compress((FIXTURES / "supp_tiny.xml").read_bytes()))
    assert list(read_mesh(packed)) == list(read_mesh_supplementary(FIXTURES / "supp_tiny.xml"))
    assert list(read_mesh(FIXTURES / "desc_tiny.xml")) == list(read_mesh_descriptors(FIXTURES / "desc_tiny.xml"))


def test_mesh_errors_name_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "desc.xml"
    broken.write_text("<DescriptorRecordSet>\n<DescriptorRecord>\n<DescriptorUI>D1</Descriptor>\n", encoding="utf8")
    with pytest.raises(KBSourceError, match=r"desc\.xml:3: column \d+: malformed XML"):
        list(read_mesh_descriptors(broken))
    other = tmp_path / "other.xml"
    other.write_text("<PubmedArticleSet></PubmedArticleSet>", encoding="utf8")
    with pytest.raises(KBSourceError, match=r"other\.xml:1: root element <PubmedArticleSet>; expected"):
        list(read_mesh_descriptors(other))
    with pytest.raises(KBSourceError, match="file not found"):
        list(read_mesh_descriptors(tmp_path / "missing.xml"))


def test_ctd_diseases_and_chemicals() -> None:
    diseases = records(list(read_ctd(FIXTURES / "CTD_diseases_tiny.tsv")))
    assert ("D001943", "Breast Neoplasms", "Disease", 1) in diseases
    assert ("D001943", "Mammary Carcinoma, Human", "Disease", 1) in diseases
    assert ("OMIM:160800", "Thomsen disease", "Disease", 1) in diseases
    chemicals = records(list(read_ctd(FIXTURES / "CTD_chemicals_tiny.tsv")))
    assert ("D016651", "Lithobid", "Chemical", 1) in chemicals
    assert ("D024502", "α-tocopherol", "Chemical", 1) in chemicals
    assert ctd_identifier("MESH:C000002") == "C000002"


def test_ctd_errors_name_file_and_line(tmp_path: Path) -> None:
    no_header = tmp_path / "CTD_diseases.tsv"
    no_header.write_text("Breast Neoplasms\tMESH:D001943\n", encoding="utf8")
    with pytest.raises(KBSourceError, match=r"CTD_diseases\.tsv:1: a data row before the '# Fields:' header"):
        list(read_ctd(no_header))
    wrong = tmp_path / "CTD_genes.tsv"
    wrong.write_text("# Fields:\n# GeneSymbol\tGeneName\tGeneID\n", encoding="utf8")
    with pytest.raises(KBSourceError, match=r"CTD_genes\.tsv:2: header \['GeneSymbol'.*expected a first column"):
        list(read_ctd(wrong))


# The KB
def test_build_kb_from_all_sources(tmp_path: Path) -> None:
    kb = build_kb(
        tmp_path / "kb",
        pubtator=[write_pubtator(tmp_path)],
        mesh=[FIXTURES / "desc_tiny.xml", FIXTURES / "supp_tiny.xml"],
        ctd=[FIXTURES / "CTD_diseases_tiny.tsv", FIXTURES / "CTD_chemicals_tiny.tsv"],
    )
    assert kb.types == ["Chemical", "Disease"]
    assert kb.contains_entity("D001943") and kb.contains_entity("C538445") and kb.contains_entity("D016651")
    assert kb.contains_alias("Breast Cancers", "Disease") and not kb.contains_alias("Breast Cancers", "Chemical")
    assert kb.get_entity_freq("D001943") >= 2  # corpus mentions count
    assert (tmp_path / "kb" / "kb.json").is_file() and (tmp_path / "kb" / "kb.npz").is_file()
    # Its sources, one per file, for the model card, saved with it.
    kinds = [(source["kind"], source["file"]) for source in kb.sources]
    assert kinds == [
        ("pubtator", "train.txt"),
        ("mesh", "desc_tiny.xml"),
        ("mesh", "supp_tiny.xml"),
        ("ctd", "CTD_diseases_tiny.tsv"),
        ("ctd", "CTD_chemicals_tiny.tsv"),
    ]
    assert all(source["names"] > 0 for source in kb.sources)
    assert ConceptKB().from_disk(tmp_path / "kb").sources == kb.sources
    with pytest.raises(ValueError, match="no source given"):
        build_kb()


def test_exact_candidates_by_prior_and_type() -> None:
    kb = ConceptKB()
    kb.add_alias("cold", ["D003139", "D003371"], [3, 1], type_="Disease")
    kb.add_alias("cold", ["D999999"], [1], type_="Chemical")
    found = kb.get_alias_candidates("Colds", "Disease")
    assert [c.entity_ for c in found] == ["D003139", "D003371"]
    assert found[0].prior_prob == pytest.approx(0.75) and found[0].match == "exact" and found[0].score == 1.0
    assert [c.entity_ for c in kb.get_alias_candidates("cold", "Chemical")] == ["D999999"]
    assert {c.entity_ for c in kb.get_alias_candidates("cold")} == {"D003139", "D003371", "D999999"}
    assert kb.get_alias_candidates("cold", "Gene") == kb.get_alias_candidates("cold")  # unknown type: all


def test_fuzzy_candidates_rank_by_cosine() -> None:
    kb = ConceptKB()
    for entity, name in [("D1", "adenomatous polyposis coli"), ("D2", "polyposis"), ("D3", "lithium carbonate")]:
        kb.add_alias(name, [entity], [1], type_="Disease")
    found = kb.get_candidates_batch(["adenomatous polyposis of the colon", "zzzz"], "Disease", k=2)
    assert [c.entity_ for c in found[0]] == ["D1", "D2"] and found[0][0].match == "ngram"
    assert 0.0 < found[0][1].score < found[0][0].score < 1.0
    assert found[1] == []  # no shared 3-gram: no candidate
    stem = kb.get_candidates_batch(["polyposes"], "Disease", k=1)[0]
    assert stem and stem[0].entity_ == "D2"


def test_adding_after_build_merges_counts() -> None:
    kb = ConceptKB()
    kb.add_alias("cold", ["A"], [1], type_="Disease")
    assert kb.get_alias_candidates("cold")[0].entity_ == "A"
    kb.add_alias("cold", ["B"], [5], type_="Disease")
    assert [c.entity_ for c in kb.get_alias_candidates("cold")] == ["B", "A"]
    assert kb.get_size_aliases() == 1


def test_sparse_top_k_equals_brute_force_neighbours() -> None:
    from sklearn.neighbors import NearestNeighbors

    names = ["breast cancer", "ovarian cancer", "breast neoplasm", "lithium", "lithium carbonate", "colon cancer"]
    index = CharNgramIndex.build(names)
    queries = ["breast cancers", "lithium salt", "colon carcinoma"]
    brute = NearestNeighbors(n_neighbors=3, algorithm="brute", metric="cosine").fit(index.vectors(names))
    distances, rows = brute.kneighbors(index.vectors(queries))
    for hits, brute_rows, brute_distances in zip(index.search(queries, 3), rows, distances):
        shared = [(int(r), 1 - d) for r, d in zip(brute_rows, brute_distances) if d < 1 - 1e-6]
        assert [r for r, _ in hits] == [r for r, _ in shared]  # brute force also lists unrelated names
        assert [s for _, s in hits] == pytest.approx([s for _, s in shared], abs=1e-5)


def test_two_pass_search_rescores_with_every_3_gram() -> None:
    names = ["breast cancer", "ovarian cancer", "colon cancer", "lung cancer", "cancer", "lithium carbonate"]
    index = CharNgramIndex.build(names)
    index._common = np.diff(index.inverted.indptr) > 2  # "cancer"'s 3-grams count as common here
    assert index._common.any()
    queries = ["breast cancers", "colon carcinoma", "lithium"]
    two_pass, exact = index.search(queries, 2, names=names), index.search(queries, 2)
    for fast, slow in zip(two_pass, exact):
        assert fast[0][0] == slow[0][0] and fast[0][1] == pytest.approx(slow[0][1], abs=1e-5)


def test_kb_round_trips_bytes_and_disk_without_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kb = build_kb(pubtator=[write_pubtator(tmp_path)], ctd=[FIXTURES / "CTD_chemicals_tiny.tsv"])
    queries = ["breast cancers", "lithobid", "ovarian tumour"]
    before = [kb.get_candidates_batch(queries, t, k=5) for t in kb.types]
    data = kb.to_bytes()
    kb.to_disk(tmp_path / "kb")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    for loaded in (ConceptKB().from_bytes(data), ConceptKB().from_disk(tmp_path / "kb")):
        assert loaded.entity_ids == kb.entity_ids and loaded.ranker == kb.ranker
        assert [loaded.get_candidates_batch(queries, t, k=5) for t in loaded.types] == before
    assert ConceptKB().from_bytes(ConceptKB().to_bytes()).get_size_entities() == 0


def test_kb_refuses_bad_data(tmp_path: Path) -> None:
    with pytest.raises(KBFormatError, match="kb.json: file not found"):
        ConceptKB().from_disk(tmp_path)
    with pytest.raises(KBFormatError, match="expected msgpack bytes"):
        ConceptKB().from_bytes(b"\xc1not msgpack")
    np.save(tmp_path / "objects.npy", np.asarray([{"a": 1}], dtype=object), allow_pickle=True)
    kb = ConceptKB()
    kb.add_alias("cold", ["A"], [1], type_="Disease")
    kb.to_disk(tmp_path / "kb")
    np.savez(tmp_path / "kb" / "kb.npz", freqs=np.asarray([{"a": 1}], dtype=object))  # type: ignore[arg-type]
    with pytest.raises(KBFormatError, match=r"kb\.npz: expected a numeric \.npz file"):
        ConceptKB().from_disk(tmp_path / "kb")


def test_pubtator_names_merge_composite_orders(tmp_path: Path) -> None:
    text = PUBTATOR.replace(
        "1\t39\t46\tLithium\tChemical\tD008094\n",
        "1\t39\t46\tLithium\tChemical\tD008094\n1\t0\t25\tBreast and ovarian cancer\tCompositeMention\tD010051|D001943\n",
    )
    found = [r for r in read_pubtator_names(write_pubtator(tmp_path, text)) if "|" in r.entity]
    assert {r.entity for r in found} == {"D001943|D010051"}  # the first spelling of the pair


def test_head_of_a_mention_is_a_candidate() -> None:
    kb = ConceptKB()
    kb.add_alias("wilms tumour", ["D009396"], [1], type_="Disease")
    kb.add_alias("sporadic neoplasm", ["D009369"], [5], type_="Disease")
    for i in range(30):  # other names, so that the n-gram search alone would miss the head
        kb.add_alias(f"sporadic disorder {i}", [f"D9{i:05d}"], [1], type_="Disease")
    found = kb.get_candidates_batch(["sporadic Wilms tumours"], "Disease", k=2)[0]
    head = [c for c in found if c.entity_ == "D009396"]
    assert head and head[0].match in ("head", "ngram") and 0 < head[0].similarity < 1


def test_find_head_takes_the_longest_suffix() -> None:
    from spacy_fastbioner.kb.lookup import _find_head

    kb = ConceptKB()
    for name, entity in (("neoplasm", "D009369"), ("wilm neoplasm", "D009396")):
        kb.add_alias(name, [entity], [1], type_="Disease")
    kb.build()
    index = kb._types["Disease"]
    assert index.texts[_find_head(index, "sporadic wilm neoplasm")] == "wilm neoplasm"
    assert _find_head(index, "wilm neoplasm") == index.find("neoplasm")
    assert _find_head(index, "neoplasm") == -1  # the mention itself is not its head


def test_ranker_features_head_char_dice_length() -> None:
    from spacy_fastbioner.kb.candidates import Candidate
    from spacy_fastbioner.kb.ranking import FEATURES, char_dice, pair_features

    candidates = [
        Candidate("A", "wilm neoplasm", 0.7, 1.0, 0.7, "ngram"),
        Candidate("B", "sporadic neoplasm", 0.8, 1.0, 0.8),
    ]
    rows = pair_features("sporadic Wilms tumours", candidates, [1, 1])
    head = FEATURES.index("head")
    assert rows[0, head] == 1.0 and rows[1, head] == 0.0
    assert char_dice("venous thrombo embolism", "venous thrombembolism") > 0.85
    assert char_dice("muscle rigidity", "muscular rigidity") > char_dice("muscle rigidity", "muscle pain")
    assert 0 < rows[0, FEATURES.index("length_ratio")] <= 1


def test_older_ranker_with_fewer_weights_keeps_its_scores(tmp_path: Path) -> None:
    from spacy_fastbioner.kb.ranking import FEATURES

    kb = ConceptKB()
    kb.add_alias("breast cancer", ["D001943"], [1], type_="Disease")
    kb.ranker = {"coef": [1.0] * 10, "intercept": [-1.0]}
    before = kb.get_candidates_batch(["breast cancers x"], "Disease")[0][0].score
    kb.to_disk(tmp_path / "kb")
    loaded = ConceptKB().from_disk(tmp_path / "kb")
    assert len(FEATURES) > 10 and loaded.ranker == kb.ranker
    assert loaded.get_candidates_batch(["breast cancers x"], "Disease")[0][0].score == pytest.approx(before)
    full = dict(kb.ranker, coef=[1.0] * 10 + [0.0] * (len(FEATURES) - 10))
    kb.ranker = full
    assert kb.get_candidates_batch(["breast cancers x"], "Disease")[0][0].score == pytest.approx(before)
