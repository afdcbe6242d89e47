"""Batched improved cross-entropy method (iCEM; Pinneri et al. 2020) over ``model.imagine``."""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict
from torch import Tensor

from planners.population import (
    keep_objective_rows,
    bound_actions,
    check_state,
    expand_states,
    fit_horizon,
    resolve_horizon,
    score_population,
)
from worldmodels.core.config import ICEMConfig
from worldmodels.core.interface import WorldModel


def colored_noise(beta: float, shape: tuple[int, ...], steps: int, device=None, generator=None) -> Tensor:
    """Gaussian noise with power spectrum S(f) ~ 1 / f^beta along its last (time) axis, unit variance.

    Each frequency f_k = k / T (k = 0 .. T//2; f_0 set to 1 / T) gets a complex Gaussian amplitude
    of std f_k^(-beta / 2); the inverse real FFT gives the signal, divided by its exact std. beta 0 is
    white noise, 1 pink, 2 red (Brownian-like); iCEM samples actions this way (Sec. 3.1).

    Shapes: -> ``[*shape, steps]``.
    """
    freqs = torch.fft.rfftfreq(steps, device=device)  # [F]
    freqs[0] = 1.0 / steps
    amplitude = freqs ** (-beta / 2.0)  # [F]
    real = torch.randn(*shape, freqs.numel(), device=device, generator=generator)
    imag = torch.randn(*shape, freqs.numel(), device=device, generator=generator)
    imag[..., 0] = 0.0
    power = 2.0 * amplitude**2  # E|X_k|^2 of a complex bin
    real_only = [0] + ([freqs.numel() - 1] if steps % 2 == 0 else [])  # DC (and Nyquist) have no phase
    real[..., real_only] *= math.sqrt(2.0)
    imag[..., real_only] = 0.0
    spectrum = torch.complex(real * amplitude, imag * amplitude)  # [*shape, F]
    signal = torch.fft.irfft(spectrum, n=steps)  # [*shape, T]
    weights = torch.full_like(power, 2.0)  # each interior bin appears twice in the full spectrum
    weights[real_only] = 1.0
    std = (weights * power).sum().sqrt() / steps
    return signal / std


class ICEMPlanner:
    """iCEM planner for a batch of start states at once (Pinneri et al. 2020, Alg. 1).

    Per call of :meth:`plan`, with mean mu (the previous mean shifted one step, last step repeated,
    when ``warm_start``; else 0) and std sigma = ``init_std``:

    for iteration i = 0 .. I-1:

    1. sample N_i = max(2K, int(N / gamma^i)) sequences a = bound(mu + sigma * eps), eps coloured
       noise with exponent beta along time (:func:`colored_noise`), bound = clip to [-1, 1] and the
       optional per-step norm cap ``max_norm``;
    2. add to them: at i = 0 the best xi*K elites of the previous step's plan, shifted one step with
       the new last step(s) sampled (``shift_elites_over_time``); at i > 0 the best xi*K elites of
       iteration i-1 (``keep_previous_elites``); at i = I-1 the mean mu itself (``use_mean_actions``);
    3. score all B * (N_i + extras) sequences in ONE ``model.imagine`` call (kept elites are scored
       again, so a stochastic model's scores stay fresh), keep the K best per state,
       mu <- (1 - alpha) mean(elites) + alpha mu, sigma <- (1 - alpha) std(elites) + alpha sigma.

    Returns the best sequence of the last iteration (``execute="best"``, iCEM) or mu (``"mean"``).

    Args:
        model: any :class:`~worldmodels.core.interface.WorldModel`.
        objective: ``objective(model, imagined [N,H]) -> [N]``, higher is better.
        config: :class:`~worldmodels.core.config.ICEMConfig` (iCEM defaults).

    Example:
        >>> planner = ICEMPlanner(model, RewardObjective(model), ICEMConfig(horizon=12))
        >>> plan = planner.plan(belief)            # [B] -> [B, 12, A]
        >>> plan = planner.plan(belief, horizon=8) # -> [B, 8, A]
    """

    def __init__(self, model: WorldModel, objective, config: ICEMConfig | None = None):
        self.model = model
        self.objective = objective
        self.config = config if config is not None else ICEMConfig()
        self.mean: Tensor | None = None  # [B,H,A], the last plan's refit mean
        self.elites: Tensor | None = None  # [B,K,H,A], the last iteration's elites, best first
        self.remembered: Tensor | None = None  # bool [B], entries whose memory is still valid

    def reset(self, batch_size: int | None = None, entries: Tensor | None = None) -> None:
        """Forget the previous mean and elites: entirely, or only for entries where ``entries`` (bool
        ``[B]``) is True (their next plan starts afresh, as at an episode start)."""
        if entries is None or self.remembered is None:
            self.mean = self.elites = self.remembered = None
        else:
            self.remembered = self.remembered & ~entries.to(self.remembered.device, torch.bool)

    def keep(self, rows: Tensor) -> None:
        """Keep only the batch entries ``rows`` (bool mask ``[B]`` or indices) of the remembered mean,
        elites and validity, and of the objective's goals (stop planning for ended episodes)."""
        if self.mean is not None:
            self.mean = self.mean[rows.to(self.mean.device)]
            self.elites = None if self.elites is None else self.elites[rows.to(self.elites.device)]
            self.remembered = self.remembered[rows.to(self.remembered.device)]
        keep_objective_rows(self.objective, rows)

    def plan(self, state: TensorDict, horizon: int | None = None) -> Tensor:
        """Plan from ``state [B]``; returns ``[B, H, A]`` within the action bounds.

        ``horizon`` overrides ``config.horizon`` for this call (e.g. ``min(steps_left, 96)``). Runs
        under ``torch.inference_mode``.
        """
        with torch.inference_mode():
            return self._plan(state, resolve_horizon(horizon, self.config.horizon))

    def _sample(self, mean: Tensor, std: Tensor, count: int) -> Tensor:
        """``count`` bounded coloured-noise sequences per state. Shapes: [B,H,A] -> [B,count,H,A]."""
        b, h, a = mean.shape
        noise = colored_noise(self.config.noise_beta, (b, count, a), h, device=mean.device).transpose(-1, -2)
        return bound_actions(mean[:, None] + std[:, None] * noise, self.config.max_norm)

    def _memory(self, b: int, h: int, a: int, device) -> tuple[Tensor, Tensor]:
        """The warm-start mean ``[B,H,A]`` and which entries remember elites (bool ``[B]``)."""
        fits = self.mean is not None and self.mean.shape[0] == b and self.mean.shape[-1] == a
        if not fits:
            return torch.zeros(b, h, a, device=device), torch.zeros(b, dtype=torch.bool, device=device)
        remembered = self.remembered.to(device)
        mean = torch.zeros(b, h, a, device=device)
        if self.config.warm_start:
            previous = self.mean.to(device)[:, 1:]  # [B,H'-1,A]
            last = self.mean.to(device)[:, -1:]  # [B,1,A]
            mean = fit_horizon(previous, h, pad=last) * remembered[:, None, None]
        return mean, remembered

    def _shifted_elites(self, mean: Tensor, std: Tensor, remembered: Tensor, count: int) -> Tensor:
        """The previous step's ``count`` best elites minus their first step, fitted to H with fresh
        samples; fresh samples entirely where ``remembered`` is False. Shapes: -> [B,count,H,A]."""
        fresh = self._sample(mean, std, count)  # [B,count,H,A]
        h = mean.shape[1]
        old = self.elites.to(mean.device)[:, :count, 1:]  # [B,count,H'-1,A]
        steps = min(old.shape[2], h)
        shifted = torch.cat([old[:, :, :steps], fresh[:, :, steps:]], dim=2)  # [B,count,H,A]
        return torch.where(remembered[:, None, None, None], shifted, fresh)

    def _plan(self, state: TensorDict, h: int) -> Tensor:
        cfg = self.config
        b = check_state(state)
        device, a = self.model.device, self.model.action_dim
        state = state.to(device)
        k = cfg.elites
        reused = int(cfg.fraction_elites_reused * k)
        mean, remembered = self._memory(b, h, a, device)
        std = torch.full_like(mean, cfg.init_std)
        elites, best = None, None
        population = cfg.population
        for i in range(cfg.iterations):
            if i > 0:
                population = max(2 * k, int(population / cfg.population_decay))
            parts = [self._sample(mean, std, population)]
            carry = cfg.shift_elites_over_time and reused > 0 and self.elites is not None and bool(remembered.any())
            if i == 0 and carry:
                parts.append(self._shifted_elites(mean, std, remembered, min(reused, self.elites.shape[1])))
            if i > 0 and cfg.keep_previous_elites and reused > 0:
                parts.append(elites[:, :reused])
            if i == cfg.iterations - 1 and cfg.use_mean_actions:
                parts.append(bound_actions(mean, cfg.max_norm)[:, None])
            candidates = torch.cat(parts, dim=1)  # [B,P,H,A]
            n = candidates.shape[1]
            scores = score_population(self.model, self.objective, expand_states(state, n), candidates)  # [B,P]
            top = scores.topk(min(k, n), dim=1).indices  # [B,K], best first
            elites = candidates.gather(1, top[:, :, None, None].expand(-1, -1, h, a))  # [B,K,H,A]
            best = elites[:, 0]  # [B,H,A]
            mean = (1 - cfg.momentum) * elites.mean(1) + cfg.momentum * mean
            std = (1 - cfg.momentum) * elites.std(1, unbiased=False) + cfg.momentum * std
        self.mean, self.elites = mean, elites
        self.remembered = torch.ones(b, dtype=torch.bool, device=device)
        return best if cfg.execute == "best" else bound_actions(mean, cfg.max_norm)
