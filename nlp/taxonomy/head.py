"""The per-taxonomy classifier head: fitted at load time from the case types' examples.

Three calibrated parts, each fitted in well under a second for a taxonomy of a few hundred
examples (sklearn fits; inference is plain NumPy):
- a softmax regression over the case types plus a "none" class (generic background texts),
  with a temperature chosen on out-of-fold predictions so its probabilities are honest;
- a similarity gate: P(in domain | cosine to the nearest example of a type), a 1-D logistic
  fit on leave-one-out same-type similarities (in) against background similarities (out),
  because a softmax is confident far away from every example and must not be trusted there;
- counter-examples: a type loses confidence when a text is nearer one of its counter-examples
  than any of its examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.float32]


@dataclass(frozen=True)
class HeadOptions:
    """How the head is fitted."""

    c: float = 10.0  # inverse L2 strength; few-shot embeddings are near-separable
    max_iter: int = 500
    cv_folds: int = 4  # for the temperature; skipped above `cv_max_examples`
    cv_max_examples: int = 3000
    counter_slope: float = 8.0


@dataclass(frozen=True)
class FittedHead:
    """Fitted weights; `n_types` case types, column `n_types` (when present) is "none"."""

    weights: Matrix  # (d, n_classes)
    bias: Matrix  # (n_classes,)
    temperature: float
    gate_slope: float
    gate_center: float
    n_types: int

    def type_log_proba(self, vectors: Matrix) -> Matrix:
        """log P(type) over the case types and "none" (n, n_classes)."""
        logits = (vectors @ self.weights + self.bias) / self.temperature
        logits = logits - logits.max(axis=1, keepdims=True)
        out: Matrix = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return out

    def gate(self, nearest_similarity: Matrix) -> Matrix:
        """P(in the domain of the type | cosine to its nearest example)."""
        z = self.gate_slope * (nearest_similarity - self.gate_center)
        out: Matrix = 1.0 / (1.0 + np.exp(-z))
        return out


def _fit_softmax(x: Matrix, y: NDArray[np.int64], options: HeadOptions) -> tuple[Matrix, Matrix]:
    from sklearn.linear_model import LogisticRegression

    n_classes = int(y.max()) + 1
    weights = np.zeros((x.shape[1], n_classes), dtype=np.float32)
    bias = np.full(n_classes, -1e4, dtype=np.float32)  # a class absent from a fold never wins
    classes = np.unique(y)
    if len(classes) == 1:
        bias[classes[0]] = 0.0
        return weights, bias
    model = LogisticRegression(C=options.c, max_iter=options.max_iter).fit(x, y)
    coef, intercept = model.coef_, model.intercept_
    if len(classes) == 2:  # sklearn keeps one row, the logit of the second class against the first
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    for column, label in enumerate(model.classes_):
        weights[:, label] = coef[column]
        bias[label] = intercept[column]
    return weights, bias


def _temperature(x: Matrix, y: NDArray[np.int64], options: HeadOptions) -> float:
    """The temperature that minimises the out-of-fold negative log-likelihood."""
    counts = np.bincount(y)
    folds = min(options.cv_folds, int(counts[counts > 0].min()))
    if folds < 2 or len(y) > options.cv_max_examples:
        return 1.0
    rng = np.random.default_rng(0)
    fold_of = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        fold_of[members] = rng.permutation(len(members)) % folds
    logits = np.zeros((len(y), int(y.max()) + 1), dtype=np.float32)
    for fold in range(folds):
        train, test = fold_of != fold, fold_of == fold
        weights, bias = _fit_softmax(x[train], y[train], options)
        logits[test] = x[test] @ weights + bias
    best, best_nll = 1.0, np.inf
    for temperature in np.geomspace(0.3, 10.0, 40):
        z = logits / temperature
        z = z - z.max(axis=1, keepdims=True)
        nll = float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean())
        if nll < best_nll:
            best, best_nll = float(temperature), nll
    return best


def _fit_gate(inside: Matrix, outside: Matrix) -> tuple[float, float]:
    """A 1-D logistic regression of "in domain" on similarity; a fixed prior when data is thin."""
    if len(inside) < 2 or len(outside) < 2:
        return 20.0, 0.45
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([inside, outside]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(inside)), np.zeros(len(outside))])
    model = LogisticRegression(C=10.0, class_weight="balanced").fit(x, y)
    slope = float(model.coef_[0, 0])
    if slope <= 0:
        return 20.0, 0.45
    return slope, float(-model.intercept_[0] / slope)


def nearest_by_type(
    similarities: Matrix, example_type: NDArray[np.int64], n_types: int
) -> tuple[Matrix, NDArray[np.int64]]:
    """Per row and type: the highest similarity to that type's examples, and which example."""
    best = np.full((similarities.shape[0], n_types), -1.0, dtype=np.float32)
    which = np.zeros((similarities.shape[0], n_types), dtype=np.int64)
    for k in range(n_types):
        columns = np.flatnonzero(example_type == k)
        if len(columns) == 0:
            continue
        sub = similarities[:, columns]
        arg = sub.argmax(axis=1)
        best[:, k] = sub[np.arange(len(sub)), arg]
        which[:, k] = columns[arg]
    return best, which


def fit_head(
    examples: Matrix,
    example_type: NDArray[np.int64],
    n_types: int,
    background: Matrix,
    options: HeadOptions,
) -> FittedHead:
    """Fit the softmax (types + "none" when background is given), its temperature and the gate."""
    x = np.vstack([examples, background]).astype(np.float32)
    y = np.concatenate([example_type, np.full(len(background), n_types)]).astype(np.int64)
    weights, bias = _fit_softmax(x, y, options)
    temperature = _temperature(x, y, options)

    sim = examples @ examples.T
    np.fill_diagonal(sim, -1.0)  # leave-one-out: an example is not its own neighbour
    own, _ = nearest_by_type(sim, example_type, n_types)
    inside = own[np.arange(len(examples)), example_type]
    inside = inside[inside > -1.0]
    outside = (
        nearest_by_type(background @ examples.T, example_type, n_types)[0].max(axis=1)
        if len(background)
        else np.zeros(0, dtype=np.float32)
    )
    slope, center = _fit_gate(inside.astype(np.float32), outside.astype(np.float32))
    return FittedHead(weights, bias, temperature, slope, center, n_types)
