"""What the benchmark reads besides interactions: item text from RecBole .item files, and the
synthetic shop whose late-launched items are seen only as test targets (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_tasks.bench import _truncate, new_item_users
from recsys_tasks.bench_data import BenchDataError, item_file_for, read_item_texts, to_sequences
from recsys_tasks.data.sequences import SequenceData
from recsys_tasks.data.synth.new_items import new_items_shop


def test_reads_ml_100k_item_text(tmp_path):
    path = tmp_path / "ml.item"
    path.write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n"
        '2\t"Brother, Can You Spare"\t\tDocumentary\n'  # a quote and a missing year
        "3\tunkonwn\tunkonwn\tunknown\n"  # ML-100K's item 267: a year that is not one
        "4\t\t1996\t\n"  # nothing but a year: no text
    )
    assert read_item_texts(path) == {
        "1": "Toy Story (1995) | Animation, Children's, Comedy",
        "2": '"Brother, Can You Spare" | Documentary',
        "3": "unkonwn | unknown",
    }


def test_reads_other_item_layouts_by_column_name_and_type(tmp_path):
    named = tmp_path / "shop.item"
    named.write_text(
        "price:float\titem_id:token\tbrand:token_seq\tproduct_name:token_seq\tcategory:token"
        "\tgenre:token_seq\n"
        "9.5\ta1\tAcme Corp\tTrail Shoe\tRunning Gear\tshoes outdoor\n"
    )
    # the title is the token_seq column named like a name, not the first one; a token keeps its spaces
    assert read_item_texts(named) == {"a1": "Trail Shoe | Running Gear, shoes, outdoor"}
    unnamed = tmp_path / "plain.item"
    unnamed.write_text("item_id:token\tdescription:token_seq\tprice:float\nb2\ta red kettle\t20\n")
    assert read_item_texts(unnamed) == {"b2": "a red kettle"}  # no title or name: the first token_seq


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("item_id:token\tprice:float\trelease_year:token", "no item text"),
        ("movie_id:token\tmovie_title:token_seq", "needs item_id:token"),
    ],
)
def test_an_item_file_without_text_or_ids_says_what_it_needs(tmp_path, header, message):
    path = tmp_path / "odd.item"
    path.write_text(header + "\n" + "\t".join("1" for _ in header.split("\t")) + "\n")
    with pytest.raises(BenchDataError, match=message):
        read_item_texts(path)
    with pytest.raises(BenchDataError, match="does not exist"):
        read_item_texts(tmp_path / "missing.item")


def test_the_item_file_next_to_the_interactions_is_found(tmp_path):
    inter = tmp_path / "x.inter"
    assert item_file_for(inter) is None
    (tmp_path / "x.item").write_text("item_id:token\ttitle:token_seq\n")
    assert item_file_for(inter) == tmp_path / "x.item"


def test_new_item_users_are_those_whose_target_training_never_saw():
    # users 0 and 1 are test users; user 2 (two items) only trains. Training input: [1, 2], [2, 3], [1].
    full = SequenceData(["u0", "u1", "u2"], [np.array([1, 2, 3]), np.array([2, 3, 4]), np.array([1, 5])],
                        [np.ones(3, dtype=np.int64), np.ones(3, dtype=np.int64), np.ones(2, dtype=np.int64)],
                        [np.arange(3), np.arange(3), np.arange(2)])
    train = _truncate(full, 1)
    # u0's target 3 is in u1's training input; u1's target 4 is nowhere (5 is u2's held-out last item)
    assert new_item_users(train, full, np.array([0, 1])).tolist() == [1]
    assert new_item_users(train, full, np.array([0])).tolist() == []


def test_late_items_of_the_shop_are_only_ever_test_targets():
    sizes = dict(n_users=400, n_items=300, days=30, events_per_user_per_day=0.6)
    shop = new_items_shop(**sizes, new_share=0.1, seed=3)
    frame = shop.interactions
    assert len(shop.late_items) == 30
    assert set(shop.item_text) >= set(frame["item"])  # every item has a text, the late ones too
    assert frame.groupby("user")["ts"].apply(lambda s: s.is_monotonic_increasing).all()

    full, vocab = to_sequences(frame)
    train = _truncate(full, 1)  # what train_model is given
    late = vocab.encode(np.array(sorted(shop.late_items & set(frame["item"]))))
    assert not np.isin(np.concatenate(train.items), late).any()
    targets = np.array([s[-1] for s in full.items])
    test_users = np.flatnonzero([len(s) >= 3 for s in full.items])
    late_target_users = test_users[np.isin(targets[test_users], late)]
    assert len(late_target_users) >= 10  # a segment worth measuring
    # the benchmark's new-items segment holds them all (plus any item that only ever came last)
    assert set(late_target_users) <= set(new_item_users(train, full, test_users))


def test_the_shop_is_reproducible_by_seed():
    sizes = dict(n_users=150, n_items=120, days=20, events_per_user_per_day=0.5)
    a, b, c = (new_items_shop(**sizes, seed=seed) for seed in (1, 1, 2))
    assert a.interactions.equals(b.interactions) and a.late_items == b.late_items
    assert not a.interactions.equals(c.interactions)
    with pytest.raises(ValueError, match="new_share"):
        new_items_shop(**sizes, new_share=1.0)
