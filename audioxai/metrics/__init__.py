"""Explanation metrics by category, each scoring one value per sample and declaring its direction.

``METRICS`` maps a name to its function, category and whether higher is better:
faithfulness (``faithfulness_correlation``; for masks, L-MAC's ``average_increase``,
``average_drop``, ``average_gain``, ``faithfulness_on_spectra``, ``input_fidelity``), robustness
(``avg_sensitivity``), complexity (``sparseness``, ``complexity``), randomisation (``random_logit``,
``model_parameter_randomisation``) and localisation (``localisation_mass``: ``attribution_mass_inside``;
``mask_auc``, ``mask_iou``). ``si_sdr`` compares waveforms and is not in the registry; nor are the dataset-level detection scores
(``equal_error_rate``, ``frame_auc``, ``frame_eer``, ``region_scores``) of ``audioxai.metrics.detection``.
"""

from audioxai.metrics.base import (METRICS, Explainer, MetricSpec, UndefinedScoreWarning, check_batch,
                                   check_model_targets, normalise_per_sample, pearson_per_sample, register_metric)
from audioxai.metrics.detection import REGIONS, equal_error_rate, frame_auc, frame_eer, region_scores
from audioxai.metrics.complexity import complexity_entropy, sparseness
from audioxai.metrics.faithfulness import faithfulness_correlation, model_outputs, subset_size
from audioxai.metrics.localisation import attribution_mass_inside, ink_mask, mask_auc, mask_iou, time_span_mask
from audioxai.metrics.mask_faithfulness import (average_drop, average_gain, average_increase, faithfulness_on_spectra,
                                                input_fidelity)
from audioxai.metrics.randomisation import (SIMILARITIES, model_parameter_randomisation,
                                            model_parameter_randomisation_score, random_logit, randomisable_layers,
                                            randomisation_score, randomised_models, spearman_per_sample,
                                            ssim_per_sample)
from audioxai.metrics.robustness import avg_sensitivity, explain_in_batches
from audioxai.metrics.signal import si_sdr

__all__ = [
    "METRICS", "Explainer", "MetricSpec", "UndefinedScoreWarning", "check_batch", "check_model_targets",
    "normalise_per_sample", "pearson_per_sample", "register_metric",
    "faithfulness_correlation", "subset_size", "model_outputs",
    "average_increase", "average_drop", "average_gain", "faithfulness_on_spectra", "input_fidelity",
    "avg_sensitivity", "explain_in_batches",
    "sparseness", "complexity_entropy",
    "attribution_mass_inside", "time_span_mask", "ink_mask", "mask_auc", "mask_iou",
    "random_logit", "model_parameter_randomisation", "model_parameter_randomisation_score", "randomisation_score",
    "randomised_models", "randomisable_layers", "ssim_per_sample", "spearman_per_sample", "SIMILARITIES",
    "si_sdr",
    "equal_error_rate", "frame_auc", "frame_eer", "region_scores", "REGIONS",
]
