"""Fine-tuning and honest evaluation of the two-head finpulse model."""
