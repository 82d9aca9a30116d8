"""Two-sample drift tests, one per kind of signal, each with a p-value and an effect size:

- :func:`ks_test`: Kolmogorov–Smirnov on a scalar statistic (brightness, box count …); effect size: the KS
  distance D (0–1) — the largest gap between the two cumulative distributions.
- :func:`chi2_test`: chi-squared on counts of categories (predicted classes, file formats); effect size:
  Cramér's V (0–1). A category the baseline never had is reported separately (:func:`new_categories`).
- :func:`mmd_test`: kernel maximum mean discrepancy between two sets of embeddings (RBF kernel, bandwidth by the
  median heuristic on the pooled sample) with a permutation p-value (beyond every permutation: the tail of a
  normal fitted to the permutation null); effect size: the unbiased MMD².
- :func:`holm`: Holm–Bonferroni adjustment of a family of p-values (the family-wise error rate stays at α however
  many features are tested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class TestResult:
    """One drift test of one feature: ``test`` (``ks``, ``chi2``, ``mmd``), ``statistic`` (the test's statistic),
    ``p_value`` (raw), ``effect`` (D, Cramér's V or MMD²), ``baseline_n`` / ``current_n`` (sample sizes)."""

    test: str
    statistic: float
    p_value: float
    effect: float
    baseline_n: int
    current_n: int

    def to_dict(self) -> dict[str, float | int | str]:
        """JSON-able dict."""
        return asdict(self)


def ks_test(baseline: Sequence[float], current: Sequence[float]) -> TestResult:
    """Two-sided two-sample Kolmogorov–Smirnov test (exact p-value for small samples, asymptotic otherwise)."""
    from scipy.stats import ks_2samp

    a, b = np.asarray(baseline, dtype=np.float64), np.asarray(current, dtype=np.float64)
    result = ks_2samp(a, b, alternative="two-sided", method="auto")
    return TestResult("ks", float(result.statistic), float(result.pvalue), float(result.statistic), a.size, b.size)


def chi2_test(baseline: Mapping[str, float], current: Mapping[str, float]) -> TestResult:
    """Chi-squared test of homogeneity between two count tables over the union of their categories (a 2 × k
    contingency table; categories with no count on either side are dropped). One category: p = 1."""
    from scipy.stats import chi2_contingency

    keys = sorted(k for k in set(baseline) | set(current) if baseline.get(k, 0) + current.get(k, 0) > 0)
    table = np.array([[baseline.get(k, 0) for k in keys], [current.get(k, 0) for k in keys]], dtype=np.float64)
    n_a, n_b = int(table[0].sum()), int(table[1].sum())
    if len(keys) < 2 or n_a == 0 or n_b == 0:
        return TestResult("chi2", 0.0, 1.0, 0.0, n_a, n_b)
    statistic, p_value, _, _ = chi2_contingency(table, correction=False)
    cramers_v = float(np.sqrt(statistic / (table.sum() * (min(table.shape) - 1))))
    return TestResult("chi2", float(statistic), float(p_value), cramers_v, n_a, n_b)


def new_categories(baseline: Mapping[str, float], current: Mapping[str, float]) -> list[str]:
    """Categories present in ``current`` that the baseline never saw."""
    return sorted(k for k, v in current.items() if v > 0 and baseline.get(k, 0) <= 0)


def _sq_distances(x: np.ndarray) -> np.ndarray:
    norms = (x * x).sum(1)
    return np.maximum(norms[:, None] + norms[None, :] - 2 * x @ x.T, 0.0)


def _mmd2(kernel: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """Unbiased MMD² for each column of ``groups`` (``[N, P]``, 1 = first sample, ``n`` ones per column) from the
    pooled RBF kernel matrix (whose diagonal is 1)."""
    m = kernel.shape[0] - n
    other = 1.0 - groups
    k_groups = kernel @ groups
    xx = (groups * k_groups).sum(0)
    xy = (other * k_groups).sum(0)
    yy = kernel.sum() - xx - 2 * xy
    return (xx - n) / (n * (n - 1)) + (yy - m) / (m * (m - 1)) - 2 * xy / (n * m)


MMD_MAX_ROWS = 500  # rows kept per side (a seeded sample) so the pooled kernel matrix stays ≤ 1000²


def mmd_test(baseline: np.ndarray, current: np.ndarray, *, permutations: int = 500, seed: int = 0) -> TestResult:
    """Kernel two-sample test on embeddings ``[N, D]`` and ``[M, D]`` (both at least 2 rows; each side sampled
    down to :data:`MMD_MAX_ROWS`): RBF kernel with the median pairwise squared distance as bandwidth, unbiased
    MMD², p-value = (1 + permutations whose MMD² ≥ the observed) / (1 + permutations)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(baseline, dtype=np.float64)
    y = np.asarray(current, dtype=np.float64)
    n_total, m_total = len(x), len(y)
    if n_total < 2 or m_total < 2:
        return TestResult("mmd", 0.0, 1.0, 0.0, n_total, m_total)
    if n_total > MMD_MAX_ROWS:
        x = x[rng.choice(n_total, MMD_MAX_ROWS, replace=False)]
    if m_total > MMD_MAX_ROWS:
        y = y[rng.choice(m_total, MMD_MAX_ROWS, replace=False)]
    n, m = len(x), len(y)
    pooled = np.concatenate([x, y])
    d2 = _sq_distances(pooled)
    upper = d2[np.triu_indices(n + m, 1)]
    bandwidth = float(np.median(upper[upper > 0])) if np.any(upper > 0) else 1.0
    kernel = np.exp(-d2 / bandwidth)
    first = np.zeros((n + m, 1))
    first[:n] = 1.0
    observed = float(_mmd2(kernel, first, n)[0])
    permuted = []
    for start in range(0, permutations, 100):  # 100 permutations per matrix product
        count = min(100, permutations - start)
        groups = np.zeros((n + m, count))
        for column in range(count):
            groups[rng.permutation(n + m)[:n], column] = 1.0
        permuted.append(_mmd2(kernel, groups, n))
    null = np.concatenate(permuted)
    exceed = int((null >= observed).sum())
    p_value = (1 + exceed) / (1 + permutations)
    if exceed == 0 and null.std() > 0:
        # beyond every permutation: 1 / (1 + permutations) only bounds p, too coarse once a check's other tests
        # are Holm-corrected with it; the tail of a normal fitted to the permutation null estimates it
        from scipy.stats import norm

        p_value = min(p_value, float(norm.sf((observed - null.mean()) / null.std())))
    return TestResult("mmd", observed, p_value, max(observed, 0.0), n_total, m_total)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given (monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=np.float64)
    k = len(p)
    order = np.argsort(p)
    adjusted = np.empty(k)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()
