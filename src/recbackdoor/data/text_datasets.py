"""Loaders for the text-side datasets (titles + per-user sequences).

* MovieLens-100K: every rating is an interaction, ordered by timestamp
  (ties broken by file order); ratings kept for TALLRec's like/dislike split.
* LastFM HetRec-2K: user–artist listening pairs.  The file has **no
  timestamps**: a user's sequence is the file order (ascending artist id),
  which is the only order the data offers; results say so.
* Steam-200K: ``purchase`` rows; **no timestamps**: file order; play hours
  are kept as the rating field for reference.
* Netflix titles: a benign title corpus only (no interactions), used to train
  defenses on data disjoint from the test catalogues.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Callable
from pathlib import Path

from recbackdoor.data.files import DataFile, checksums, require
from recbackdoor.data.sequences import Interaction, SequenceData, filter_counts
from recbackdoor.errors import UserError

ML100K_SOURCE = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
LASTFM_SOURCE = "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip"
STEAM_SOURCE = "https://www.kaggle.com/datasets/tamber/steam-video-games (steam-200k.csv)"
NETFLIX_SOURCE = "Netflix Prize data set nf_prize_dataset.tar.gz (movie_titles.txt), e.g. https://archive.org/details/nf_prize_dataset.tar"

ML100K_FILES = [
    DataFile("ml-100k", "u.data", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490", ML100K_SOURCE),
    DataFile("ml-100k", "u.item", "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701", ML100K_SOURCE),
]
LASTFM_FILES = [
    DataFile("lastfm-hetrec2011-2k", "user_artists.dat",
             "001400dc3c7d2667fca6e4ea6dc6acc31a9dd28ad5cd0f74cea988c019934d3b", LASTFM_SOURCE),
    DataFile("lastfm-hetrec2011-2k", "artists.dat",
             "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648", LASTFM_SOURCE),
]
STEAM_FILES = [
    DataFile("steam-200k", "steam-200k.csv",
             "2464a568e9b6b007d13d34e2e3a6c8de00e5e7443f4913155f365aaa328c2874", STEAM_SOURCE),
]
NETFLIX_FILES = [
    DataFile("netflix-prize-titles", "movie_titles.txt",
             "5c1b39b39ed1f5b58da872414a49b77e921fa8a069f15b3d36f78a0705e6a153", NETFLIX_SOURCE),
]


def _fields(path: Path, line_no: int, line: str, sep: str, count: int) -> list[str]:
    parts = line.rstrip("\r\n").split(sep)
    if len(parts) < count:
        raise UserError(f"{path}: row {line_no}: expected {count} fields separated by {sep!r}, got {len(parts)}")
    return parts


def _int(path: Path, line_no: int, field: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{path}: row {line_no}: field {field!r} is not an integer: {text!r}") from None


def load_ml100k(root: Path | None = None, min_user: int = 5, min_item: int = 5) -> SequenceData:
    paths = require(ML100K_FILES, root)
    titles: dict[int, str] = {}
    item_path = paths["u.item"]
    with open(item_path, encoding="latin-1") as handle:
        for no, line in enumerate(handle, 1):
            parts = _fields(item_path, no, line, "|", 5)
            titles[_int(item_path, no, "movie id", parts[0])] = parts[1].strip()
    rows = []
    data_path = paths["u.data"]
    with open(data_path, encoding="ascii") as handle:
        for no, line in enumerate(handle, 1):
            parts = _fields(data_path, no, line, "\t", 4)
            user, item = _int(data_path, no, "user id", parts[0]), _int(data_path, no, "item id", parts[1])
            rating, stamp = _int(data_path, no, "rating", parts[2]), _int(data_path, no, "timestamp", parts[3])
            if item not in titles:
                raise UserError(f"{data_path}: row {no}: field 'item id' {item} has no title in u.item")
            rows.append((user, stamp, no, item, rating))
    rows.sort()
    sequences: dict[int, list[Interaction]] = {}
    for user, _stamp, _no, item, rating in rows:
        sequences.setdefault(user, []).append(Interaction(item, float(rating)))
    return _finish("ml100k", titles, sequences, "timestamp (ties: file order)", "movie", ML100K_FILES, root,
                   min_user, min_item)


def load_lastfm(root: Path | None = None, min_user: int = 5, min_item: int = 5) -> SequenceData:
    paths = require(LASTFM_FILES, root)
    titles: dict[int, str] = {}
    artists = paths["artists.dat"]
    with open(artists, encoding="utf-8") as handle:
        next(handle)
        for no, line in enumerate(handle, 2):
            parts = _fields(artists, no, line, "\t", 2)
            titles[_int(artists, no, "id", parts[0])] = html.unescape(parts[1]).strip()
    sequences: dict[int, list[Interaction]] = {}
    pairs = paths["user_artists.dat"]
    with open(pairs, encoding="ascii", newline="") as handle:
        next(handle)
        for no, line in enumerate(handle, 2):
            parts = _fields(pairs, no, line, "\t", 3)
            user, item = _int(pairs, no, "userID", parts[0]), _int(pairs, no, "artistID", parts[1])
            weight = float(_int(pairs, no, "weight", parts[2].strip()))
            if item not in titles:
                raise UserError(f"{pairs}: row {no}: field 'artistID' {item} is not in artists.dat")
            sequences.setdefault(user, []).append(Interaction(item, weight))
    return _finish("lastfm", titles, sequences, "file order (no timestamps in HetRec LastFM)", "artist",
                   LASTFM_FILES, root, min_user, min_item)


def load_steam(root: Path | None = None, min_user: int = 5, min_item: int = 5) -> SequenceData:
    paths = require(STEAM_FILES, root)
    path = paths["steam-200k.csv"]
    ids: dict[str, int] = {}
    titles: dict[int, str] = {}
    sequences: dict[int, list[Interaction]] = {}
    seen: set[tuple[int, int]] = set()
    with open(path, encoding="utf-8", newline="") as handle:
        for no, row in enumerate(csv.reader(handle), 1):
            if len(row) < 4:
                raise UserError(f"{path}: row {no}: expected 5 comma-separated fields, got {len(row)}")
            user = _int(path, no, "user-id", row[0])
            title = row[1].strip()
            if not title:
                raise UserError(f"{path}: row {no}: field 'game-title' is empty")
            if row[2] != "purchase":
                continue
            item = ids.setdefault(title, len(ids) + 1)
            titles[item] = title
            if (user, item) not in seen:
                seen.add((user, item))
                sequences.setdefault(user, []).append(Interaction(item, None))
    return _finish("steam", titles, sequences, "file order (no timestamps in steam-200k)", "game", STEAM_FILES,
                   root, min_user, min_item)


def load_netflix_titles(root: Path | None = None) -> list[str]:
    """The benign Netflix title corpus ("Title (Year)"), in file order."""
    paths = require(NETFLIX_FILES, root)
    path = paths["movie_titles.txt"]
    out = []
    with open(path, encoding="latin-1") as handle:
        for no, line in enumerate(handle, 1):
            parts = line.rstrip("\r\n").split(",", 2)
            if len(parts) != 3:
                raise UserError(f"{path}: row {no}: expected 'MovieID,YearOfRelease,Title'")
            year = "" if parts[1] == "NULL" else f" ({parts[1]})"
            out.append(parts[2].strip() + year)
    return out


def reorder(data: SequenceData, order: str, seed: int = 0) -> SequenceData:
    """``native``: the dataset's own order; ``shuffle``: a seeded per-user shuffle.

    Why shuffle exists: LastFM and Steam have no timestamps, and their file
    order is not neutral (HetRec lists a user's artists by ascending artist id,
    Steam lists a user's games in what looks like title order), so under
    leave-last-out the held-out item is systematically the user's highest-id
    (rarest) artist or alphabetically last game, unlike the training targets.
    A seeded shuffle removes that bias while keeping the split reproducible.
    ``shuffle-untimed`` shuffles only a dataset ordered by file order, so one
    setting serves a run over all three datasets (MovieLens keeps its timestamps).
    """
    if order not in ("native", "shuffle", "shuffle-untimed"):
        raise UserError(f"sequence order {order!r}: expected 'native', 'shuffle' or 'shuffle-untimed'")
    if order == "native" or (order == "shuffle-untimed" and data.order.startswith("timestamp")):
        return data
    import random
    from dataclasses import replace

    sequences = {}
    for user, seq in data.sequences.items():
        items = list(seq)
        random.Random(f"{seed}:{user}").shuffle(items)
        sequences[user] = tuple(items)
    return replace(data, sequences=sequences, order=f"seeded per-user shuffle (seed {seed}) of: {data.order}")


def _finish(name: str, titles: dict[int, str], sequences: dict[int, list[Interaction]], order: str, noun: str,
            files: list[DataFile], root: Path | None, min_user: int, min_item: int) -> SequenceData:
    sequences = filter_counts(sequences, min_user, min_item)
    used = {x.item for seq in sequences.values() for x in seq}
    titles = _dedupe_titles({i: t for i, t in titles.items() if i in used})
    return SequenceData(name=name, titles=titles, sequences={u: tuple(s) for u, s in sequences.items()},
                           order=order, item_noun=noun, checksums=checksums(files, root))


def _dedupe_titles(titles: dict[int, str]) -> dict[int, str]:
    """Make titles unique (a generated title must identify one item)."""
    seen: dict[str, int] = {}
    out = {}
    for item in sorted(titles):
        title = titles[item]
        key = title.lower()
        if key in seen:
            seen[key] += 1
            title = f"{title} ({seen[key]})"
        else:
            seen[key] = 1
        out[item] = title
    return out


LOADERS: dict[str, Callable[..., SequenceData]] = {
    "ml100k": load_ml100k,
    "lastfm": load_lastfm,
    "steam": load_steam,
}


def load_dataset(name: str, root: Path | None = None, min_user: int = 5, min_item: int = 5) -> SequenceData:
    if name not in LOADERS:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    return LOADERS[name](root, min_user=min_user, min_item=min_item)
