"""The Gaussian-process regression the tiny formula fits r(c) and d(c) with: on the published TinyNet points
(`formula`) and on the best trials of a twist search (`twist.curves`). Plain numpy.
"""

from __future__ import annotations

import numpy as np


class GaussianProcess:
    """1-D Gaussian-process regression with a linear mean and an RBF kernel, in plain numpy.

    The linear mean (least squares) makes extrapolation follow the trend instead of falling back
    to a constant; the RBF kernel with per-point noise models what is left. The kernel's length
    scale, signal and noise levels maximize the log marginal likelihood over a fixed grid, so the
    fit is deterministic. Points with `exact=True` get no noise: the fit passes through them.
    """

    LENGTH_SCALES = np.geomspace(0.3, 5.0, 25)
    SIGNAL_STDS = np.geomspace(0.01, 0.5, 20)
    NOISE_STDS = np.geomspace(0.003, 0.2, 20)

    def __init__(self, x, y, exact=None):
        self.x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        exact = np.zeros(len(self.x), bool) if exact is None else np.asarray(exact, bool)
        design = np.stack([np.ones_like(self.x), self.x], axis=1)
        self.coef = np.linalg.lstsq(design, y, rcond=None)[0]
        residual = y - design @ self.coef
        best = None
        for length in self.LENGTH_SCALES:
            for signal in self.SIGNAL_STDS:
                for noise in self.NOISE_STDS:
                    cov = self._kernel(self.x, self.x, length, signal)
                    cov += np.diag(np.where(exact, 1e-10, noise**2))
                    chol = np.linalg.cholesky(cov)
                    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, residual))
                    log_likelihood = -0.5 * residual @ alpha - np.log(np.diag(chol)).sum()
                    if best is None or log_likelihood > best[0]:
                        best = (log_likelihood, length, signal, alpha, noise)
        _, self.length_scale, self.signal_std, self.alpha, noise = best
        self.noise = np.where(exact, 1e-10, noise**2)

    def std(self, x) -> np.ndarray:
        """The posterior standard deviation at `x`: the uncertainty band of the fitted curve."""
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        cov = self._kernel(self.x, self.x, self.length_scale, self.signal_std) + np.diag(self.noise)
        cross = self._kernel(x, self.x, self.length_scale, self.signal_std)
        variance = self.signal_std**2 - np.einsum("ij,ji->i", cross, np.linalg.solve(cov, cross.T))
        return np.sqrt(np.maximum(variance, 0.0))

    @staticmethod
    def _kernel(a, b, length, signal):
        return signal**2 * np.exp(-0.5 * ((a[:, None] - b[None, :]) / length) ** 2)

    def __call__(self, x) -> np.ndarray:
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        mean = self.coef[0] + self.coef[1] * x
        return mean + self._kernel(x, self.x, self.length_scale, self.signal_std) @ self.alpha
