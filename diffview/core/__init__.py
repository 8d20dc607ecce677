"""The diffusion core: pure torch/numpy/Pillow, no Qt.

Schedules (:mod:`.schedule`), the forward and reverse process (:mod:`.diffusion`), the samplers
(:mod:`.sampling`), classifier-free guidance (:mod:`.guidance`), and losses and the variational
bound (:mod:`.losses`).
"""

from diffview.core.diffusion import (
    OBJECTIVES,
    StepResult,
    ddim_step,
    ddpm_step,
    langevin_step,
    predict_eps_from_x0,
    predict_x0_eps,
    predict_x0_from_eps,
    predict_x0_from_v,
    q_posterior,
    q_sample,
    v_target,
)
from diffview.core.guidance import NULL_LABEL, cfg_combine, guided
from diffview.core.losses import (
    discretized_gaussian_log_likelihood,
    nll_bpd,
    normal_kl,
    prior_bpd,
    training_loss,
    vlb_terms,
)
from diffview.core.sampling import SAMPLERS, SPACINGS, SampleStep, iter_sample, sample, timestep_sequence
from diffview.core.schedule import SCHEDULES, NoiseSchedule, make_schedule, respace, schedule_from_betas

__all__ = [
    "OBJECTIVES", "SAMPLERS", "SCHEDULES", "SPACINGS",
    "NoiseSchedule", "SampleStep", "StepResult",
    "make_schedule", "respace", "schedule_from_betas",
    "q_sample", "q_posterior", "predict_x0_from_eps", "predict_eps_from_x0", "predict_x0_from_v",
    "predict_x0_eps", "v_target", "ddpm_step", "ddim_step", "timestep_sequence", "iter_sample",
    "sample", "langevin_step", "NULL_LABEL", "cfg_combine", "guided",
    "training_loss", "normal_kl", "discretized_gaussian_log_likelihood", "prior_bpd", "vlb_terms", "nll_bpd",
]
