"""VisRank: content-based retrieval by Euclidean distance between extractor features.

Protocol (paper §6.2.1): in the validation images, 10 % of each category are
queries and the rest form the database.  MAP uses the query's own label;
t-MAP stamps the trigger on non-target queries and relabels them to the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recbackdoor.metrics.vision import mean_average_precision, targeted_map


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


def visrank_scores(query_emb: np.ndarray, query_labels: np.ndarray, triggered_query_emb: np.ndarray,
                   db_emb: np.ndarray, db_labels: np.ndarray, target: int) -> dict[str, float]:
    """MAP on clean queries; t-MAP on the triggered versions of the non-target queries."""
    keep = query_labels != target
    return {"map": mean_average_precision(query_emb, query_labels, db_emb, db_labels),
            "t_map": targeted_map(triggered_query_emb[keep], db_emb, db_labels, target)}
