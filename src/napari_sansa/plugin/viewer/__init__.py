"""napari layer adapters: which layers are images, prompts and results, and writing into them."""
