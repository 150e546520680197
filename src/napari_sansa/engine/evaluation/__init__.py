"""How good a result is: scores against a ground truth, and leave-one-out over references."""
