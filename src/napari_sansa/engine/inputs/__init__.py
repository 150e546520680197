"""What a user gives the engine: images (in memory, lazy or pyramids), prompts and label masks."""
