"""Fine-tune SANSA's adapters on a user's own annotated images (few-shot episodes, SAM2 frozen)."""
