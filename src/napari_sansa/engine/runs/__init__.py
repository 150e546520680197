"""Runs: references into memories, batches of targets through the heads, stacks and tiled images."""
