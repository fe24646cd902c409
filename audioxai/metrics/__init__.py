"""Explanation metrics by category, each scoring one value per sample and declaring its direction.

``METRICS`` maps a name to its function, category and whether higher is better:
faithfulness (``faithfulness_correlation``), robustness (``avg_sensitivity``), complexity
(``sparseness``), randomisation (``random_logit``, ``model_parameter_randomisation``) and
localisation (``localisation_mass``: ``attribution_mass_inside``).
"""

from audioxai.metrics.base import (METRICS, Explainer, MetricSpec, UndefinedScoreWarning, check_batch,
                                   check_model_targets, normalise_per_sample, pearson_per_sample, register_metric)
from audioxai.metrics.complexity import sparseness
from audioxai.metrics.faithfulness import faithfulness_correlation, model_outputs, subset_size
from audioxai.metrics.localisation import attribution_mass_inside, ink_mask, time_span_mask
from audioxai.metrics.randomisation import (SIMILARITIES, model_parameter_randomisation,
                                            model_parameter_randomisation_score, random_logit, randomisable_layers,
                                            randomisation_score, randomised_models, spearman_per_sample,
                                            ssim_per_sample)
from audioxai.metrics.robustness import avg_sensitivity, explain_in_batches

__all__ = [
    "METRICS", "Explainer", "MetricSpec", "UndefinedScoreWarning", "check_batch", "check_model_targets",
    "normalise_per_sample", "pearson_per_sample", "register_metric",
    "faithfulness_correlation", "subset_size", "model_outputs",
    "avg_sensitivity", "explain_in_batches",
    "sparseness",
    "attribution_mass_inside", "time_span_mask", "ink_mask",
    "random_logit", "model_parameter_randomisation", "model_parameter_randomisation_score", "randomisation_score",
    "randomised_models", "randomisable_layers", "ssim_per_sample", "spearman_per_sample", "SIMILARITIES",
]
