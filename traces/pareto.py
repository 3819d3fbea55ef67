"""The Pareto front of a sweep: designs no other design beats on both cost and accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from formats.errors import RsimError


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, by increasing cost.

    Point i is dominated when some point j costs no more and is no less accurate, and is strictly
    better in one of the two; identical points do not dominate each other, so all are kept.
    """
    cost = np.asarray(costs, dtype=np.float64)
    accuracy = np.asarray(accuracies, dtype=np.float64)
    if cost.shape != accuracy.shape or cost.ndim != 1:
        raise RsimError(
            f"pareto front: costs and accuracies must be two equally long lists, got shapes "
            f"{cost.shape} and {accuracy.shape}"
        )
    if np.isnan(cost).any() or np.isnan(accuracy).any():
        raise RsimError("pareto front: costs and accuracies must not be NaN")
    order = np.lexsort((-accuracy, cost))
    front: list[int] = []
    for index in order:
        if not front or accuracy[index] > accuracy[front[-1]]:
            front.append(int(index))
        elif accuracy[index] == accuracy[front[-1]] and cost[index] == cost[front[-1]]:
            front.append(int(index))
    return front
