"""Diagnostics of training: what each loss term's gradient does to the student (Lightning callbacks)."""

from distill.diagnostics.gradient_norms import GradientNorms
from distill.diagnostics.gradient_statistics import GradientStatistics
from distill.diagnostics.term_gradients import per_sample_gradient_variance, term_gradients

__all__ = ["GradientNorms", "GradientStatistics", "per_sample_gradient_variance", "term_gradients"]
