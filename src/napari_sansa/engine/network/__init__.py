"""The network: SAM2's architecture, SANSA's adapters, checkpoints, published weights, precision."""
