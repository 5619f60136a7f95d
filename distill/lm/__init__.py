"""Language models: causal-LM distillation (teacher-forced token losses, data, models)."""
