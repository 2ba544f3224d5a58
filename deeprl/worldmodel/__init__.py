"""World models (lecture: "World models"): learn the environment, then act in its dreams.

- :mod:`deeprl.worldmodel.vae`: state encoder q_ψ(z|s) and decoder p_ψ(ŝ|z), trained with the ELBO.
- :mod:`deeprl.worldmodel.dynamics`: transition p_ψ(z'|z,a), reward p_ψ(r'|z') and continue
  p_ψ(c|z') models, each fitted by maximum likelihood on encoded transitions.
"""

from deeprl.worldmodel.dynamics import (ContinueModel, GaussianReward, GaussianTransition, gaussian_log_prob,
                                        gaussian_rsample)
from deeprl.worldmodel.vae import VAE, ELBOTerms, elbo, kl_standard_normal, make_vae

__all__ = ["VAE", "ContinueModel", "ELBOTerms", "GaussianReward", "GaussianTransition", "elbo",
           "gaussian_log_prob", "gaussian_rsample", "kl_standard_normal", "make_vae"]
