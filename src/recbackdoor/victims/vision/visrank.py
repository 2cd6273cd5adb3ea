"""VisRank: content-based retrieval by Euclidean distance between extractor features.

Protocol (paper §6.2.1): in the validation images, 10 % of each category are
queries and the rest form the database.  MAP uses the query's own label;
t-MAP stamps the trigger on non-target queries and relabels them to the target
(both scored in ``metrics.vision_eval``; this module only ranks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QuerySplit:
    query: np.ndarray
    database: np.ndarray


def split_queries(labels: np.ndarray, share: float, seed: int) -> QuerySplit:
    """Seeded per-category split: ``share`` of each category become queries."""
    rng = np.random.default_rng(seed)
    query = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        query.append(rng.choice(idx, max(1, int(round(share * len(idx)))), replace=False))
    q = np.sort(np.concatenate(query))
    return QuerySplit(q, np.setdiff1d(np.arange(len(labels)), q))


def rank_database(query_emb: np.ndarray, db_emb: np.ndarray) -> np.ndarray:
    """Database indices per query, nearest first by Euclidean distance (ties keep database order)."""
    d = ((query_emb ** 2).sum(1)[:, None] - 2 * query_emb @ db_emb.T + (db_emb ** 2).sum(1)[None, :])
    return np.argsort(d, axis=1, kind="stable")
