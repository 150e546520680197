"""How good a result is on the user's own references: leave-one-out (it runs a model; the scores are :mod:`..metrics`)."""
