"""Model factories, weight loading and fingerprints."""

from distill.models.checkpoint import load_weights, read_state_dict
from distill.models.factory import build_model, check_model_name
from distill.models.fingerprint import count_parameters, weights_sha256
from distill.models.model_spec import ModelSpec

__all__ = ["ModelSpec", "build_model", "check_model_name", "count_parameters", "load_weights", "read_state_dict", "weights_sha256"]
